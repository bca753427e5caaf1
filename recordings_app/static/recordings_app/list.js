// The call list's play buttons (rows added live too): one shared player,
// press again to stop.
(function () {
  "use strict";

  const player = new Audio();
  let playing = null;
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.play");
    if (!button) { return; }
    if (playing === button) { player.pause(); button.textContent = "▶"; playing = null; return; }
    if (playing) { playing.textContent = "▶"; }
    player.src = button.dataset.src;
    player.play();
    button.textContent = "■";
    playing = button;
  });
  player.addEventListener("ended", function () { if (playing) { playing.textContent = "▶"; playing = null; } });
})();
