// One clock for every page's script: 65.2 -> "1:05", 3725 -> "1:02:05", as
// the templates' `clock` filter writes it. Loaded before live.js and player.js.
(function () {
  "use strict";

  window.callrecorder = window.callrecorder || {};
  window.callrecorder.clock = function clock(seconds) {
    const whole = Math.max(0, Math.round(seconds));
    const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  };
})();
