// Calls in progress, live: the list's "In progress" table and a live call's
// page (elapsed time, level meter, pause state, listen-in for staff).
// One WebSocket to /ws/calls brings started / levels / paused / ended.
(function () {
  "use strict";

  const socketBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  const list = document.querySelector("[data-live-list]");
  const callPanel = document.querySelector("[data-live-call]");
  const root = list || callPanel;
  if (!root) { return; }

  const clock = window.callrecorder.clock;  // clock.js

  // Elapsed times tick in the browser from what the server said at load.
  function startTicking(element, elapsedSeconds) {
    element.dataset.t0 = String(performance.now() - elapsedSeconds * 1000);
  }
  document.querySelectorAll("[data-elapsed]").forEach(function (element) {
    startTicking(element, parseFloat(element.dataset.elapsed) || 0);
  });
  setInterval(function () {
    document.querySelectorAll("[data-t0]").forEach(function (element) {
      const field = element.querySelector("[data-field=elapsed]");
      if (field) { field.textContent = clock((performance.now() - parseFloat(element.dataset.t0)) / 1000); }
    });
  }, 1000);

  function liveElement(callId) {
    if (callPanel) { return String(callPanel.dataset.liveCall) === String(callId) ? callPanel : null; }
    return list.querySelector(`tr[data-call-id="${callId}"]`);
  }

  function showPaused(element, paused, by) {
    const badge = element.querySelector("[data-field=paused]");
    if (!paused && !badge.hidden) {  // say it (the badge is in a status region), then hide
      badge.textContent = "recording resumed";
      setTimeout(function () { if (badge.textContent === "recording resumed") { badge.hidden = true; } }, 4000);
      return;
    }
    badge.hidden = !paused;
    badge.textContent = paused && by ? `recording paused by ${by}` : "recording paused";
  }

  // --- the list page ------------------------------------------------------
  const liveRows = list && list.querySelector("[data-live-rows]");
  const rowTemplate = document.getElementById("live-row-template");
  const finishedRows = document.querySelector("[data-finished-rows]");
  const finishedNotice = document.querySelector("[data-finished-notice]");

  function addLiveRow(call) {
    if (liveElement(call.id)) { return; }
    // Listed as ended when its worker fell silent, and live after all.
    const listedAsEnded = finishedRows && finishedRows.querySelector(`tr[data-call-id="${call.id}"]`);
    if (listedAsEnded) { listedAsEnded.remove(); }
    const row = rowTemplate.content.querySelector("tr").cloneNode(true);
    row.dataset.callId = call.id;
    row.querySelector("[data-field=link]").href = call.url;
    row.querySelector("[data-field=from]").textContent = call.from || "unknown";
    row.querySelector("[data-field=to]").textContent = call.to || "—";
    showPaused(row, call.paused, "");
    startTicking(row, 0);
    liveRows.appendChild(row);
    list.hidden = false;
  }

  async function moveToFinished(callId) {
    const row = liveElement(callId);
    if (row) { row.remove(); }
    list.hidden = liveRows.children.length === 0;
    if (document.querySelector("[data-reload-when-finished]")) { location.reload(); return; }  // the first call
    if (!finishedRows) { finishedNotice.hidden = false; return; }
    // Marked as the page's own request: it does not keep an idle session alive.
    const response = await fetch(list.dataset.rowUrl.replace("/0/", `/${callId}/`),
      { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
    // A redirect is the sign-in page (the session ended): never put it in the table.
    if (!response.ok || response.redirected) { finishedNotice.hidden = false; return; }
    const holder = document.createElement("template");
    holder.innerHTML = (await response.text()).trim();
    // Drawn already (a snapshot, then "ended"; or a call whose worker fell
    // silent, now recovered with its recording): the newer row wins.
    const drawn = finishedRows.querySelector(`tr[data-call-id="${callId}"]`);
    if (drawn) { drawn.replaceWith(holder.content); } else { finishedRows.prepend(holder.content); }
  }

  // --- both pages ------------------------------------------------------------
  // What is live now, sent as the socket opens: the page may be a moment old.
  function reconcile(calls) {
    const live = new Set(calls.map((call) => String(call.id)));
    if (callPanel) {
      if (!live.has(String(callPanel.dataset.liveCall))) { location.reload(); }  // it ended
      return;
    }
    for (const call of calls) {
      addLiveRow(call);
      showPaused(liveElement(call.id), call.paused, call.paused_by);
    }
    for (const row of Array.from(liveRows.children)) {
      if (!live.has(row.dataset.callId)) { moveToFinished(row.dataset.callId); }
    }
  }

  function handle(message) {
    if (message.event === "snapshot") {
      reconcile(message.calls);
    } else if (message.event === "started" && list) {
      addLiveRow(message.call);
    } else if (message.event === "levels") {
      for (const [callId, level] of Object.entries(message.levels)) {
        const element = liveElement(callId);
        if (element) { element.querySelector("[data-field=level]").value = level; }
      }
    } else if (message.event === "paused") {
      const element = liveElement(message.call_id);
      if (element) { showPaused(element, message.paused, message.by); }
      const pauseForm = element && element.querySelector("[data-pause-form]");
      if (pauseForm) {  // someone else paused or resumed: offer the other action
        pauseForm.elements.action.value = message.paused ? "resume" : "pause";
        pauseForm.querySelector("button").textContent = message.paused ? "Resume recording" : "Pause recording";
      }
    } else if (message.event === "ended") {
      if (callPanel) {
        if (liveElement(message.call_id)) { location.reload(); }  // the recording is ready
      } else {
        moveToFinished(message.call_id);
      }
    }
  }

  let opened = false;
  let retry = 1000;
  function connect() {
    const socket = new WebSocket(socketBase + root.dataset.socketPath);
    socket.onmessage = function (event) { handle(JSON.parse(event.data)); };
    socket.onopen = function () {
      retry = 1000;
      // Back after a break: calls may have started or ended meanwhile.
      if (opened) { location.reload(); }
      opened = true;
      root.dataset.connected = "true";
    };
    socket.onclose = function (event) {
      root.dataset.connected = "false";
      if (event.code === 4401) { location.reload(); return; }  // signed out: to the login page
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();

  // --- listen-in (staff, a live call's page) ----------------------------------
  const listenButton = document.querySelector("[data-listen-path]");
  if (!listenButton) { return; }
  const listenStatus = document.querySelector("[data-listen-status]");
  const DELAY_SECONDS = 0.3;  // a little buffer against network jitter
  let listening = null;

  function stopListening(text) {
    if (!listening) { return; }
    listening.socket.close();
    listening.context.close();
    listening = null;
    listenButton.textContent = "Listen live";
    listenButton.setAttribute("aria-pressed", "false");
    listenStatus.textContent = text || "";
  }

  listenButton.addEventListener("click", function () {
    if (listening) { stopListening(); return; }
    const context = new AudioContext();
    const socket = new WebSocket(socketBase + listenButton.dataset.listenPath);
    socket.binaryType = "arraybuffer";
    listening = { context: context, socket: socket, rate: 16000, next: 0 };
    const session = listening;
    listenButton.textContent = "Stop listening";
    listenButton.setAttribute("aria-pressed", "true");
    listenStatus.textContent = "Connecting…";
    socket.onmessage = function (event) {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        if (message.sample_rate) { session.rate = message.sample_rate; listenStatus.textContent = "Listening"; }
        if (message.event === "ended") { stopListening("The call ended."); }
        return;
      }
      const pcm = new Int16Array(event.data);
      const buffer = context.createBuffer(1, pcm.length, session.rate);
      const samples = buffer.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) { samples[i] = pcm[i] / 32768; }
      const source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(context.destination);
      if (session.next < context.currentTime + 0.05) { session.next = context.currentTime + DELAY_SECONDS; }
      source.start(session.next);
      session.next += buffer.duration;
      listenStatus.dataset.samples = String(parseInt(listenStatus.dataset.samples, 10) + pcm.length);
      const text = `Listening, ${DELAY_SECONDS} s behind`;
      if (listenStatus.textContent !== text) { listenStatus.textContent = text; }  // announced once
    };
    socket.onclose = function (event) {
      if (listening !== session) { return; }
      if (event.code === 4401) { location.reload(); return; }  // signed out: to the login page
      const reasons = { 4403: "Only staff may listen in.", 4404: "The call is not in progress." };
      stopListening(reasons[event.code] || "Listening stopped.");
    };
  });
})();
