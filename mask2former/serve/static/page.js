// The service's page: pick or drop an image (or a webcam frame), pick a task, see the result
// drawn over the image with a legend; hover for a segment's class and score, untick to hide.
// Everything comes from this service: /v1/model once, /v1/predict per image.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, image: null, blob: null, answer: null, ids: null, segments: [], hidden: new Set() };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function headers(extra = {}) {
  const token = $("token").value.trim();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function loadModel() {
  const response = await fetch("/v1/model", { headers: headers() });
  if (response.status === 401) {
    $("token-field").hidden = false;
    $("model-info").textContent = "this service needs a token: enter it on the left";
    return;
  }
  state.model = await response.json();
  const m = state.model;
  $("model-info").textContent =
    `${m.source} · ${m.classes.length} classes · ${m.format} ${m.precision} on ${m.device} · ` +
    `input ${m.input.min_size}–${m.input.max_size}px`;
}

function classById(categoryId) {
  return state.model.classes.find((c) => c.id === categoryId);
}

function colorOf(categoryId, jitter) {
  const c = classById(categoryId);
  const base = c ? c.color : [128, 128, 128];
  if (!jitter) return base;
  // things of one class get nearby shades, so touching instances stay apart
  return base.map((v, i) => Math.max(0, Math.min(255, v + (((jitter * (37 + 14 * i)) % 61) - 30))));
}

function decodePng(base64) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      resolve(ctx.getImageData(0, 0, img.width, img.height).data);
    };
    img.onerror = () => reject(new Error("the result PNG could not be decoded"));
    img.src = `data:image/png;base64,${base64}`;
  });
}

// state.ids: Int32Array (height * width) of segment numbers (0: none); state.segments: their info
async function buildSegments(answer) {
  const n = answer.height * answer.width;
  const ids = new Int32Array(n);
  let segments = [];
  if (answer.task === "panoptic") {
    const rgba = await decodePng(answer.png);
    for (let i = 0; i < n; i++) ids[i] = rgba[4 * i] + 256 * rgba[4 * i + 1] + 65536 * rgba[4 * i + 2];
    segments = answer.segments_info.map((s) => ({
      id: s.id, name: s.category_name, score: s.score, area: s.area,
      color: colorOf(s.category_id, s.isthing ? s.id : 0),
    }));
  } else if (answer.task === "semantic") {
    const rgba = await decodePng(answer.png);
    for (let i = 0; i < n; i++) ids[i] = rgba[4 * i] + 1;
    segments = answer.classes.map((c) => ({
      id: c.index + 1, name: c.category_name, score: null, area: c.area, color: colorOf(c.category_id, 0),
    }));
  } else {
    const threshold = parseFloat($("threshold").value) || 0;
    const kept = answer.instances
      .map((inst, k) => ({ ...inst, id: k + 1 }))
      .filter((inst) => inst.score >= threshold)
      .sort((a, b) => a.score - b.score); // the most confident drawn last, on top
    for (const inst of kept) {
      const mask = rleDecode(inst.segmentation);
      for (let i = 0; i < n; i++) if (mask[i]) ids[i] = inst.id;
    }
    segments = kept.reverse().map((inst) => ({
      id: inst.id, name: inst.category_name, score: inst.score,
      area: inst.bbox[2] * inst.bbox[3], color: colorOf(inst.category_id, inst.id),
    }));
  }
  state.ids = ids;
  state.segments = segments;
  state.hidden = new Set();
}

function draw() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  if (!state.image) return;
  canvas.width = state.image.width;
  canvas.height = state.image.height;
  ctx.drawImage(state.image, 0, 0);
  if (!state.ids || state.ids.length !== canvas.width * canvas.height) return;
  const alpha = parseFloat($("opacity").value);
  const colors = new Map(state.segments.filter((s) => !state.hidden.has(s.id)).map((s) => [s.id, s.color]));
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  const w = canvas.width;
  for (let i = 0; i < state.ids.length; i++) {
    const color = colors.get(state.ids[i]);
    if (!color) continue;
    const edge = (i % w > 0 && state.ids[i - 1] !== state.ids[i]) || (i >= w && state.ids[i - w] !== state.ids[i]);
    const a = edge ? 1 : alpha;
    for (let c = 0; c < 3; c++) data[4 * i + c] = Math.round((1 - a) * data[4 * i + c] + a * color[c]);
  }
  ctx.putImageData(pixels, 0, 0);
}

function legend() {
  const list = $("legend");
  list.replaceChildren();
  for (const s of state.segments) {
    const item = document.createElement("li");
    item.dataset.id = s.id;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !state.hidden.has(s.id);
    box.title = "show or hide this segment";
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(s.id); else state.hidden.add(s.id);
      draw();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${s.color.join(",")})`;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = s.score === null ? s.name : `${s.name} ${s.score.toFixed(2)}`;
    item.append(box, swatch, label);
    list.append(item);
  }
  if (!state.segments.length) list.innerHTML = "<li>nothing found</li>";
}

function segmentAt(event) {
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * canvas.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * canvas.height);
  if (!state.ids || x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return null;
  const id = state.ids[y * canvas.width + x];
  return state.segments.find((s) => s.id === id && !state.hidden.has(s.id)) || null;
}

function hover(event) {
  const tip = $("tooltip");
  const segment = segmentAt(event);
  for (const li of $("legend").children) li.classList.toggle("active", segment && li.dataset.id == segment.id);
  if (!segment) { tip.hidden = true; return; }
  const rect = $("canvas").getBoundingClientRect();
  tip.textContent = segment.score === null ? segment.name : `${segment.name} · score ${segment.score.toFixed(3)}`;
  tip.style.left = `${event.clientX - rect.left + 12}px`;
  tip.style.top = `${event.clientY - rect.top + 12}px`;
  tip.hidden = false;
}

function task() {
  return document.querySelector("input[name=task]:checked").value;
}

async function predict() {
  if (!state.blob) return;
  setStatus(`running ${task()} segmentation…`);
  const started = performance.now();
  let response;
  try {
    response = await fetch(`/v1/predict?task=${task()}&format=json`, {
      method: "POST", body: state.blob,
      headers: headers({ "Content-Type": state.blob.type || "application/octet-stream" }),
    });
  } catch (error) {
    setStatus(`the service did not answer: ${error}`, true);
    return;
  }
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    if (response.status === 401) $("token-field").hidden = false;
    setStatus(body.error || `HTTP ${response.status}`, true);
    return;
  }
  state.answer = body;
  await buildSegments(body);
  draw();
  legend();
  $("download-json").disabled = false;
  $("download-png").disabled = false;
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  setStatus(`${state.segments.length} segment(s) · ${seconds} s (model ${body.timings_ms.queue_and_model} ms)`);
}

async function useBlob(blob) {
  state.blob = blob;
  state.ids = null;
  try {
    state.image = await createImageBitmap(blob, { imageOrientation: "from-image" });
  } catch (error) {
    setStatus("the browser cannot show this file; sending it anyway");
    state.image = null;
  }
  draw();
  await predict();
}

function download(name, blob) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function startCamera() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    $("camera").srcObject = stream;
    $("camera").hidden = false;
    $("snap-button").hidden = false;
  } catch (error) {
    setStatus(`no webcam: ${error.message || error}`, true);
  }
}

function snap() {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => useBlob(blob), "image/png");
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => e.target.files[0] && useBlob(e.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => e.dataTransfer.files[0] && useBlob(e.dataTransfer.files[0]));
  for (const radio of document.querySelectorAll("input[name=task]")) radio.addEventListener("change", predict);
  $("threshold").addEventListener("change", async () => {
    if (state.answer && state.answer.task === "instance") { await buildSegments(state.answer); draw(); legend(); }
  });
  $("opacity").addEventListener("input", draw);
  $("token").addEventListener("change", async () => { await loadModel(); await predict(); });
  $("canvas").addEventListener("mousemove", hover);
  $("canvas").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  $("download-json").addEventListener("click", () =>
    download(`${state.answer.task}.json`, new Blob([JSON.stringify(state.answer, null, 1)], { type: "application/json" })));
  $("download-png").addEventListener("click", () => $("canvas").toBlob((b) => download(`${state.answer.task}.png`, b)));
  $("camera-button").addEventListener("click", startCamera);
  $("snap-button").addEventListener("click", snap);
}

wire();
loadModel().catch((error) => setStatus(`cannot reach the service: ${error}`, true));
