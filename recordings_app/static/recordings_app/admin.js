// The admin's players (admin/columns.py): a button, and the recording's
// length beside it. The <audio> is made when the button is first pressed,
// so a changelist fetches no audio (and the access log records no play)
// until someone plays one. One plays at a time.
(function () {
  "use strict";

  function clock(seconds) {
    const whole = Math.round(seconds || 0);
    const hours = Math.floor(whole / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const secs = String(whole % 60).padStart(2, "0");
    return hours
      ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}`
      : `${minutes}:${secs}`;
  }

  let playing = null;

  function label(player, text) {
    const button = player.querySelector(".admin-play");
    button.setAttribute("aria-label", text);
    button.title = text;
  }

  function showTime(player, audio) {
    if (audio.error) {
      return; // "cannot play" stays
    }
    const length = Number(player.dataset.duration) || audio.duration || 0;
    player.querySelector(".admin-player-time").textContent =
      audio.currentTime > 0 ? `${clock(audio.currentTime)} / ${clock(length)}` : clock(length);
  }

  function audioOf(player) {
    let audio = player.querySelector("audio");
    if (audio) {
      return audio;
    }
    audio = document.createElement("audio");
    audio.preload = "auto";
    audio.src = player.dataset.src;
    audio.addEventListener("playing", () => {
      player.dataset.state = "playing";
      label(player, "Pause");
    });
    audio.addEventListener("pause", () => {
      if (audio.error) {
        return; // a failed load pauses too, after its error
      }
      player.dataset.state = "paused";
      label(player, "Play");
    });
    audio.addEventListener("timeupdate", () => showTime(player, audio));
    audio.addEventListener("ended", () => {
      audio.currentTime = 0;
      showTime(player, audio);
    });
    audio.addEventListener("error", () => {
      // The media view refused (no permission to play) or the file is damaged.
      player.dataset.state = "error";
      label(player, "Cannot play this recording");
      player.querySelector(".admin-player-time").textContent = "cannot play";
    });
    player.append(audio);
    return audio;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest(".admin-play");
    if (!button) {
      return;
    }
    const player = button.closest(".admin-player");
    const audio = audioOf(player);
    if (!audio.paused) {
      audio.pause();
      return;
    }
    if (playing && playing !== audio) {
      playing.pause();
    }
    playing = audio;
    audio.play().catch(() => {});  // a failure shows through the error event
  });
})();
