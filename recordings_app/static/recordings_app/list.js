// The call list's play buttons (rows added live too): one shared player,
// press again to stop. A button says whether it is playing (aria-pressed).
(function () {
  "use strict";

  const player = new Audio();
  let playing = null;
  function show(button, isPlaying) {
    button.textContent = isPlaying ? "■" : "▶";
    button.setAttribute("aria-pressed", String(isPlaying));
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.play");
    if (!button) { return; }
    if (playing === button) { player.pause(); show(button, false); playing = null; return; }
    if (playing) { show(playing, false); }
    player.src = button.dataset.src;
    player.play();
    show(button, true);
    playing = button;
  });
  player.addEventListener("ended", function () { if (playing) { show(playing, false); playing = null; } });
})();
