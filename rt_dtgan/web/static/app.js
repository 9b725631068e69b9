// The page of `rt-dtgan web`: choose a portrait, send the camera over WebRTC, show the
// animated portrait it sends back, its controls, and the status line. window.rtDtgan holds
// the figures the status line shows (for tests and curious people).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { portrait: null, connection: null, channel: null, camera: null, session: null, recorder: null };
const figures = { shown: 0, server: null, latencyMs: null, network: {} };
window.rtDtgan = figures;

function say(text, kind = "error") {
  $("message").textContent = text;
  $("message").className = kind;
}

async function sendPortrait(url, body, preview) {
  say("finding the face…", "info");
  $("start").disabled = true;
  const reply = await fetch(url, { method: "POST", body });
  const answer = await reply.json().catch(() => ({ error: `the server answered ${reply.status}` }));
  if (reply.ok) {
    state.portrait = answer.id;
    $("portrait-preview").src = preview;
    $("portrait-preview").hidden = false;
  }
  $("start").disabled = state.connection !== null || state.portrait === null;
  if (!reply.ok) say(answer.error + (state.portrait ? " (the portrait before stays)" : ""));
  else say(`portrait ready (${answer.width}x${answer.height})${state.connection ? ": Stop, then Start to use it" : ""}`, "info");
}

function useFile(file) {
  if (file) sendPortrait(`/api/portrait?name=${encodeURIComponent(file.name)}`, file, URL.createObjectURL(file));
}

async function showExamples() {
  const { examples } = await (await fetch("/api/examples")).json();
  for (const name of examples) {
    const button = document.createElement("button");
    button.title = `example portrait ${name}`;
    button.dataset.example = name;
    button.innerHTML = `<img alt="${name}" src="/api/examples/${encodeURIComponent(name)}">`;
    button.onclick = () => sendPortrait(`/api/portrait?example=${encodeURIComponent(name)}`, null, `/api/examples/${encodeURIComponent(name)}`);
    $("examples").append(button);
  }
}

function settings() {
  return { mirror: $("mirror").checked, strength: Number($("strength").value), pose: $("pose").value };
}

async function start() {
  $("start").disabled = true;
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    say(`the camera is not available: ${error.message}`);
    $("start").disabled = false;
    return;
  }
  $("camera").srcObject = state.camera;
  const connection = new RTCPeerConnection();
  state.connection = connection;
  state.camera.getTracks().forEach((track) => connection.addTrack(track, state.camera));
  state.channel = connection.createDataChannel("control");
  state.channel.onmessage = (event) => onServerMessage(JSON.parse(event.data));
  connection.ontrack = (event) => { $("output").srcObject = event.streams[0] || new MediaStream([event.track]); };
  connection.onconnectionstatechange = () => {
    if (["failed", "closed"].includes(connection.connectionState) && state.connection === connection) stop("the connection ended");
  };
  await connection.setLocalDescription(await connection.createOffer());
  await gatheringDone(connection);
  const reply = await fetch("/api/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...connection.localDescription.toJSON(), portrait: state.portrait, settings: settings() }),
  });
  const answer = await reply.json().catch(() => ({ error: `the server answered ${reply.status}` }));
  if (!reply.ok) {
    stop(answer.error);
    return;
  }
  state.session = answer.session;
  await connection.setRemoteDescription(answer);
  for (const id of ["stop", "recalibrate", "record", "snapshot"]) $(id).disabled = false;
  say("streaming: look at the camera with a relaxed face", "info");
}

function gatheringDone(connection) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    connection.addEventListener("icegatheringstatechange", () => {
      if (connection.iceGatheringState === "complete") resolve();
    });
  });
}

function stop(reason) {
  if (state.session) navigator.sendBeacon("/api/close", JSON.stringify({ session: state.session }));
  if (state.connection) state.connection.close();
  if (state.camera) state.camera.getTracks().forEach((track) => track.stop());
  Object.assign(state, { connection: null, channel: null, camera: null, session: null });
  for (const id of ["stop", "recalibrate", "record", "snapshot"]) $(id).disabled = true;
  $("start").disabled = state.portrait === null;
  if (reason) say(reason);
}

function control(message) {
  if (state.channel && state.channel.readyState === "open") state.channel.send(JSON.stringify(message));
}

function onServerMessage(message) {
  if (message.type === "figures") figures.server = message;
  else if (message.type === "applied") say(message.text, "info");
  else if (message.type === "refused") say(message.text);
  else if (message.type === "ended") stop(message.error ? `the stream stopped: ${message.error}` : "the stream ended");
}

// Frames shown, counted as the browser presents them; the latency is an estimate from the
// parts the browser and the server measure (docs/web.md measures it glass to glass).
function countShown() {
  const video = $("output");
  const onFrame = () => { figures.shown += 1; video.requestVideoFrameCallback(onFrame); };
  video.requestVideoFrameCallback(onFrame);
}

async function readNetwork() {
  if (!state.connection) return;
  const network = {};
  (await state.connection.getStats()).forEach((report) => {
    if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) {
      network.rttMs = 1000 * report.currentRoundTripTime;
    } else if (report.type === "inbound-rtp" && report.kind === "video" && report.jitterBufferEmittedCount) {
      network.bufferMs = (1000 * report.jitterBufferDelay) / report.jitterBufferEmittedCount;
      network.decodeMs = report.framesDecoded ? (1000 * report.totalDecodeTime) / report.framesDecoded : 0;
    } else if (report.type === "outbound-rtp" && report.kind === "video" && report.framesEncoded) {
      network.encodeMs = (1000 * report.totalEncodeTime) / report.framesEncoded;
    }
  });
  figures.network = network;
}

function showStatus() {
  const server = figures.server;
  if (!state.connection || !server) return;
  const parts = [`frames shown ${figures.shown}`, `${server.fps.toFixed(1)} fps`];
  const { rttMs = 0, bufferMs = 0, decodeMs = 0, encodeMs = 0 } = figures.network;
  if (server.server_ms !== null) {
    figures.latencyMs = Math.round(encodeMs + rttMs + (server.sent_ms ?? server.server_ms) + bufferMs + decodeMs);
    parts.push(`latency ≈ ${figures.latencyMs} ms (server ${Math.round(server.server_ms)} ms)`);
  }
  parts.push(server.face ? "face" : (server.reason || "no face"));
  $("status").textContent = parts.join(" · ");
}

function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder($("output").srcObject, { mimeType: "video/webm" });
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = () => {
    $("clip").href = URL.createObjectURL(new Blob(chunks, { type: "video/webm" }));
    $("clip").hidden = false;
    $("record").textContent = "Record";
    state.recorder = null;
    say("the clip is ready: Download the clip", "info");
  };
  recorder.start(250);
  state.recorder = recorder;
  $("record").textContent = "Stop recording";
}

function downloadFrame() {
  const video = $("output");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const link = document.createElement("a");
  link.download = "rt-dtgan-frame.png";
  link.href = canvas.toDataURL("image/png");
  link.click();
}

$("portrait").onchange = (event) => useFile(event.target.files[0]);
$("drop").ondragover = (event) => { event.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  useFile(event.dataTransfer.files[0]);
};
$("start").onclick = start;
$("stop").onclick = () => stop();
$("recalibrate").onclick = () => control({ type: "recalibrate" });
$("mirror").onchange = () => {
  $("camera").classList.toggle("mirrored", $("mirror").checked);
  control({ type: "mirror", on: $("mirror").checked });
};
$("strength").oninput = () => { $("strength-value").textContent = $("strength").value; };
$("strength").onchange = () => control({ type: "strength", value: Number($("strength").value) });
$("pose").onchange = () => control({ type: "pose", mode: $("pose").value });
$("record").onclick = toggleRecording;
$("snapshot").onclick = downloadFrame;
window.addEventListener("pagehide", () => stop());
countShown();
setInterval(() => { readNetwork(); showStatus(); }, 500);
showExamples();
