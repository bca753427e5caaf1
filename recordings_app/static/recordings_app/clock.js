// One clock for every page's script: 65.2 -> "1:05", 3725 -> "1:02:05", as
// the templates' `clock` filter writes it; offset(1.97) -> "0:01.9", tenths
// cut as the `offset` filter cuts them. Loaded before live.js and player.js.
(function () {
  "use strict";

  window.callrecorder = window.callrecorder || {};
  window.callrecorder.clock = function clock(seconds) {
    const whole = Math.max(0, Math.round(seconds));
    const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  };
  window.callrecorder.offset = function offset(seconds) {
    const tenths = Math.floor(Math.max(0, seconds) * 10 + 1e-6);
    return `${window.callrecorder.clock(Math.floor(tenths / 10))}.${tenths % 10}`;
  };
})();
