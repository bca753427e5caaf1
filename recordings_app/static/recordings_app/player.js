// A call's page: each recording's waveform (drawn from the peaks stored at
// finalise) is a slider over its <audio>: click or drag to seek, arrow keys
// move 5 s, event markers and the timeline's "At" offsets play from there.
// Markers that would overlap at this width go on rows of their own; events
// at one moment share a marker that opens their list. The page's own
// controls (play, skip, time to the tenth, mute) stand in for the stock
// player, which stays in the page for assistive technology. Also the speed
// selector and the delete confirmation <dialog>.
// Without script the page keeps the native player and a confirmation page.
(function () {
  "use strict";

  const STEP_SECONDS = 5;
  const PAGE_SECONDS = 30;
  const BAR = 2, GAP = 1; // CSS pixels per waveform bar and between bars
  const MARKER = 22; // CSS pixels a marker needs to itself
  const MAX_LANES = 4;

  const offset = window.callrecorder.offset;  // clock.js

  function setUp(section) {
    const audio = section.querySelector("audio");
    const wave = section.querySelector(".wave");
    const track = section.querySelector(".wave-track");
    const canvas = track.querySelector("canvas");
    const peaksScript = section.querySelector("script[type='application/json']");
    const peaks = peaksScript ? JSON.parse(peaksScript.textContent) : [];
    const loudest = Math.max(250, ...peaks); // quiet calls still show their shape
    const markers = Array.from(section.querySelectorAll(".wave-markers > .marker"));
    const controls = section.querySelector("[data-controls]");
    let pendingSeek = null;
    let frame = 0;
    wave.hidden = false;

    function duration() {
      return isFinite(audio.duration) && audio.duration > 0
        ? audio.duration : parseFloat(wave.dataset.duration) || 0;
    }

    function now() {
      return pendingSeek !== null ? pendingSeek : audio.currentTime;
    }

    function seek(seconds) {
      const target = Math.min(Math.max(seconds, 0), duration());
      if (audio.readyState >= HTMLMediaElement.HAVE_METADATA) {
        audio.currentTime = target;
      } else {
        pendingSeek = target; // applied once the browser knows the file
        if (audio.preload === "none") { audio.preload = "metadata"; }
      }
      update();
    }

    audio.addEventListener("loadedmetadata", function () {
      track.setAttribute("aria-valuemax", String(Math.round(duration())));
      if (pendingSeek !== null) {
        audio.currentTime = pendingSeek;
        pendingSeek = null;
      }
      update();
    });

    function colour(name, fallback) {
      return getComputedStyle(track).getPropertyValue(name).trim() || fallback;
    }

    // Spans between a pause marker and the next resume (or the end) are silence.
    function pausedSpans() {
      const spans = [];
      let from = null;
      wave.querySelectorAll(".wave-markers [data-seek]").forEach(function (button) {
        const at = parseFloat(button.dataset.seek);
        const kind = button.closest("li").classList;
        if (kind.contains("marker-paused") && from === null) { from = at; }
        if (kind.contains("marker-resumed") && from !== null) {
          spans.push([from, at]);
          from = null;
        }
      });
      if (from !== null) { spans.push([from, duration()]); }
      return spans;
    }

    // A marker too close to the one before it at this width goes a row up.
    function layOutMarkers(width) {
      const lastCentre = [];
      markers.forEach(function (marker) {
        const centre = parseFloat(marker.style.getPropertyValue("--at")) / 100 * width;
        let lane = lastCentre.findIndex((last) => centre - last >= MARKER);
        if (lane === -1) { lane = Math.min(lastCentre.length, MAX_LANES - 1); }
        lastCentre[lane] = centre;
        marker.style.setProperty("--lane", String(lane));
        marker.classList.toggle("opens-left", centre > width / 2);
      });
      wave.style.setProperty("--lanes", String(Math.max(1, lastCentre.length)));
    }

    function draw() {
      const width = track.clientWidth, height = track.clientHeight;
      if (!width || !height) { return; }
      layOutMarkers(width);
      const ratio = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
      }
      const context = canvas.getContext("2d");
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      context.clearRect(0, 0, width, height);
      const length = duration();
      const progress = length ? now() / length : 0;
      const shade = colour("--wave-paused", "rgba(154, 103, 0, 0.18)");
      pausedSpans().forEach(function ([from, to]) {
        context.fillStyle = shade;
        context.fillRect(from / length * width, 0, (to - from) / length * width, height);
      });
      const bars = Math.max(1, Math.floor(width / (BAR + GAP)));
      const middle = height / 2;
      const played = colour("--wave-played", "#2457d6");
      const unplayed = colour("--wave", "#b8b8c0");
      for (let bar = 0; bar < bars; bar++) {
        let value = 0;
        if (peaks.length) {
          const first = Math.floor(bar * peaks.length / bars);
          const last = Math.max(first + 1, Math.floor((bar + 1) * peaks.length / bars));
          for (let i = first; i < last; i++) { value = Math.max(value, peaks[i]); }
        }
        const half = Math.max(0.5, (value / loudest) * (middle - 2));
        const x = bar * (BAR + GAP);
        context.fillStyle = (x + BAR / 2) / width <= progress ? played : unplayed;
        context.fillRect(x, middle - half, BAR, half * 2);
      }
      if (progress > 0) {
        context.fillStyle = colour("--wave-head", "#1d1d1f");
        context.fillRect(Math.min(progress * width, width - 2), 0, 2, height);
      }
    }

    function update() {
      const length = duration(), at = now();
      track.setAttribute("aria-valuenow", String(Math.round(at)));
      track.setAttribute("aria-valuetext", `${offset(at)} of ${offset(length)}`);
      if (controls) { showControls(at, length); }
      draw();
    }

    function showControls(at, length) {
      const play = controls.querySelector("[data-play]");
      const verb = audio.paused ? "Play" : "Pause";
      play.setAttribute("aria-label", play.getAttribute("aria-label").replace(/^\w+/, verb));
      controls.querySelector("[data-play-icon]").textContent = audio.paused ? "▶" : "❚❚";
      controls.querySelector("[data-time]").textContent = `${offset(at)} / ${offset(length)}`;
      controls.querySelector("[data-mute]").setAttribute("aria-pressed", String(audio.muted));
    }

    if (controls) {
      controls.hidden = false;
      audio.classList.add("stock"); // out of sight, still there for assistive technology
      controls.querySelector("[data-play]").addEventListener("click", function () {
        if (audio.paused) { audio.play(); } else { audio.pause(); }
      });
      controls.querySelectorAll("[data-skip]").forEach(function (button) {
        button.addEventListener("click", function () { seek(now() + parseFloat(button.dataset.skip)); });
      });
      controls.querySelector("[data-mute]").addEventListener("click", function () { audio.muted = !audio.muted; });
      audio.addEventListener("volumechange", update);
    }

    // Events at one moment: their marker opens and closes their list.
    wave.querySelectorAll(".marker-toggle").forEach(function (toggle) {
      const menu = document.getElementById(toggle.getAttribute("aria-controls"));
      function open(yes) {
        toggle.setAttribute("aria-expanded", String(yes));
        menu.hidden = !yes;
      }
      toggle.addEventListener("click", function () { open(menu.hidden); });
      menu.addEventListener("click", function (event) {
        if (event.target.closest("[data-seek]")) { open(false); toggle.focus(); }
      });
      menu.closest(".marker").addEventListener("keydown", function (event) {
        if (event.key === "Escape" && !menu.hidden) { open(false); toggle.focus(); }
      });
      document.addEventListener("click", function (event) {
        if (!menu.hidden && !toggle.closest(".marker").contains(event.target)) { open(false); }
      });
    });

    function animate() {
      update();
      frame = audio.paused ? 0 : requestAnimationFrame(animate);
    }
    audio.addEventListener("play", function () { if (!frame) { frame = requestAnimationFrame(animate); } });
    ["play", "pause", "seeked", "timeupdate", "ended", "durationchange"].forEach(function (type) {
      audio.addEventListener(type, update);
    });

    // Click or drag on the waveform to seek.
    function seekToPointer(event) {
      const box = track.getBoundingClientRect();
      seek(((event.clientX - box.left) / box.width) * duration());
    }
    track.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) { return; }
      track.setPointerCapture(event.pointerId);
      track.focus();
      seekToPointer(event);
    });
    track.addEventListener("pointermove", function (event) {
      if (track.hasPointerCapture(event.pointerId)) { seekToPointer(event); }
    });

    track.addEventListener("keydown", function (event) {
      const moves = {
        ArrowRight: STEP_SECONDS, ArrowUp: STEP_SECONDS,
        ArrowLeft: -STEP_SECONDS, ArrowDown: -STEP_SECONDS,
        PageUp: PAGE_SECONDS, PageDown: -PAGE_SECONDS,
      };
      if (event.key in moves) {
        seek(now() + moves[event.key]);
      } else if (event.key === "Home") {
        seek(0);
      } else if (event.key === "End") {
        seek(duration());
      } else if (event.key === " " || event.key === "Enter") {
        if (audio.paused) { audio.play(); } else { audio.pause(); }
      } else {
        return;
      }
      event.preventDefault();
    });

    section.querySelectorAll("[data-seek]").forEach(function (button) {
      button.addEventListener("click", function () { seek(parseFloat(button.dataset.seek)); });
    });

    const speed = section.querySelector("[data-speed]");
    if (speed) {
      speed.addEventListener("change", function () {
        audio.playbackRate = audio.defaultPlaybackRate = parseFloat(speed.value);
      });
    }

    if ("ResizeObserver" in window) { new ResizeObserver(draw).observe(track); }
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", draw);
    update();
    return { seek: seek, audio: audio };
  }

  const players = Array.from(document.querySelectorAll("[data-player]")).map(setUp);

  // The timeline's "At" offsets play the recording the event happened in.
  document.querySelectorAll("table.timeline [data-seek]").forEach(function (button) {
    button.addEventListener("click", function () {
      const player = players[parseInt(button.dataset.recording, 10) - 1];
      if (!player) { return; }
      player.seek(parseFloat(button.dataset.seek));
      const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      player.audio.closest("[data-player]").scrollIntoView({ block: "nearest", behavior: still ? "auto" : "smooth" });
    });
  });

  // Delete asks in a modal <dialog>; without script the form opens a
  // confirmation page instead.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    const dialog = document.getElementById(form.dataset.confirm);
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      dialog.showModal();
    });
    dialog.addEventListener("close", function () { form.querySelector("button").focus(); });
  });
})();
