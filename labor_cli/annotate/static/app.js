// labor annotate: the page. Plain JavaScript, no build step, no libraries.
// The server is the source of truth: every answer is posted (and journaled there) before the page moves on.
"use strict";

const ZOOM_POINT = 32; // image pixels across the zoomed crop around a point, at zoom level 0
const page = {
  session: null, // /api/session: classes, images, unit
  answers: [], // per item: class index, "unsure", "mixed" or null
  progress: null,
  current: 0, // the item shown
  images: new Map(), // image index -> {info, img, overlay}
  zoomLevel: 0,
  finishArmedUntil: 0,
  finished: false,
  queue: Promise.resolve(), // key presses and clicks, handled one after another
};

// --- talking to the server ---

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  return checked(response);
}

async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  return checked(response);
}

async function checked(response) {
  let data = null;
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

// --- items and images ---

function imageOf(item) { // binary search over the images' first items
  const images = page.session.images;
  let low = 0, high = images.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (images[mid].first_item <= item) low = mid; else high = mid - 1;
  }
  return low;
}

async function loadImage(index) {
  if (page.images.has(index)) return page.images.get(index);
  const entry = (async () => {
    const [info, img] = await Promise.all([getJson(`/api/image/${index}`), loadPicture(`/image/${index}`)]);
    return { info, img, overlay: null };
  })();
  page.images.set(index, entry);
  try { return await entry; } catch (error) { page.images.delete(index); throw error; }
}

function loadPicture(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${src}`));
    img.src = src;
  });
}

function nextUnanswered(from) {
  const count = page.answers.length;
  for (let step = 1; step <= count; step++) {
    const item = (from + step) % count;
    if (page.answers[item] === null) return item;
  }
  return null;
}

function imageWithItems(start, direction) {
  const images = page.session.images;
  for (let i = start; i >= 0 && i < images.length; i += direction) if (images[i].items > 0) return i;
  return null;
}

// --- showing the current item ---

async function show(item) {
  const index = imageOf(item);
  const entry = await loadImage(index);
  page.current = item;
  page.entry = entry;
  render();
  timer.reset(); // the person's time starts once the item is on screen
  const next = imageWithItems(index + 1, 1);
  if (next !== null) loadImage(next).catch(() => {}); // preload
}

function render() {
  const { session, current } = page;
  const index = imageOf(current);
  const image = session.images[index];
  const local = current - image.first_item;
  const unit = session.unit;
  document.getElementById("image-title").textContent =
    `image ${index + 1} of ${session.images.length}: ${image.image_id} (${image.width}x${image.height})`;
  const answer = page.answers[current];
  const [x, y] = page.entry.info.anchors[local];
  const title = document.getElementById("item-title");
  title.textContent = `${unit} ${local + 1} of ${image.items} in this image` +
    (unit === "point" ? ` at x=${x}, y=${y}` : `, ${plural(regionPixels(local).length / 2, "pixel")}`) + " — ";
  const strong = document.createElement("strong");
  strong.textContent = answer === null ? "not answered yet" : `answered: ${answerName(answer)}`;
  title.appendChild(strong);
  for (const button of document.querySelectorAll("[data-class]")) {
    button.classList.toggle("chosen", String(answer) === button.dataset.class);
  }
  for (const button of document.querySelectorAll("[data-action]")) {
    button.classList.toggle("chosen", answer === button.dataset.action);
  }
  renderProgress();
  drawFull();
  drawZoom();
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function answerName(answer) {
  return typeof answer === "number" ? page.session.classes[answer].name : answer;
}

function renderProgress() {
  const p = page.progress;
  const unit = page.session.unit;
  document.getElementById("progress").textContent =
    `${p.answered} of ${p.items} ${unit}s answered · ${p.left} left · images done ${p.images_done} of ${p.images}`;
  document.getElementById("bar-fill").style.width = `${p.items ? (100 * p.answered) / p.items : 100}%`;
  document.body.dataset.answered = String(p.answered);
}

function regionPixels(local) {
  const pixels = page.entry.info.pixels;
  return pixels ? pixels[local] : page.entry.info.anchors[local];
}

function colourOf(answer, alpha) {
  if (answer === null) return `rgba(255,255,255,${alpha})`;
  if (answer === "unsure") return `rgba(150,150,150,${alpha})`;
  if (answer === "mixed") return `rgba(30,30,30,${alpha})`;
  const [r, g, b] = page.session.classes[answer].colour;
  return `rgba(${r},${g},${b},${alpha})`;
}

function fitCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return context;
}

function drawFull() {
  const canvas = document.getElementById("full");
  const { img, info } = page.entry;
  const width = canvas.clientWidth;
  const maxHeight = Math.max(200, window.innerHeight - 140);
  const scale = Math.min(width / img.naturalWidth, maxHeight / img.naturalHeight);
  const context = fitCanvas(canvas, width, img.naturalHeight * scale);
  const left = (width - img.naturalWidth * scale) / 2;
  context.imageSmoothingEnabled = scale < 1;
  context.drawImage(img, left, 0, img.naturalWidth * scale, img.naturalHeight * scale);
  const first = info.first_item;
  const local = page.current - first;
  if (page.session.unit === "region") {
    context.imageSmoothingEnabled = false;
    context.drawImage(regionOverlay(), left, 0, img.naturalWidth * scale, img.naturalHeight * scale);
    const box = bounds(regionPixels(local));
    ring(context, left + box.x0 * scale - 6, box.y0 * scale - 6,
         (box.x1 - box.x0) * scale + 12, (box.y1 - box.y0) * scale + 12);
    return;
  }
  info.anchors.forEach(([x, y], k) => {
    if (k === local) return;
    dot(context, left + (x + 0.5) * scale, (y + 0.5) * scale, page.answers[first + k]);
  });
  const [x, y] = info.anchors[local];
  crosshair(context, left + (x + 0.5) * scale, (y + 0.5) * scale, 14);
}

function dot(context, x, y, answer) {
  context.beginPath();
  context.arc(x, y, answer === null ? 3.5 : 4.5, 0, 2 * Math.PI);
  context.fillStyle = colourOf(answer, 1);
  context.fill();
  context.lineWidth = 1.5;
  context.strokeStyle = "#000";
  context.stroke();
}

function crosshair(context, x, y, radius) {
  for (const [colour, width] of [["#000", 5], ["#ffd500", 2.5]]) {
    context.strokeStyle = colour;
    context.lineWidth = width;
    context.beginPath();
    context.arc(x, y, radius, 0, 2 * Math.PI);
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
      context.moveTo(x + dx * radius * 1.5, y + dy * radius * 1.5);
      context.lineTo(x + dx * radius * 2.6, y + dy * radius * 2.6);
    }
    context.stroke();
  }
}

function ring(context, x, y, width, height) {
  for (const [colour, lineWidth] of [["#000", 5], ["#ffd500", 2.5]]) {
    context.strokeStyle = colour;
    context.lineWidth = lineWidth;
    context.strokeRect(x, y, width, height);
  }
}

function bounds(flat) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < flat.length; i += 2) {
    x0 = Math.min(x0, flat[i]); x1 = Math.max(x1, flat[i] + 1);
    y0 = Math.min(y0, flat[i + 1]); y1 = Math.max(y1, flat[i + 1] + 1);
  }
  return { x0, y0, x1, y1 };
}

// An SPL image's regions, each filled with its answer's colour (the current one in yellow), at the image's own size.
function regionOverlay() {
  const { img, info } = page.entry;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  const data = context.createImageData(canvas.width, canvas.height);
  info.pixels.forEach((flat, k) => {
    const item = info.first_item + k;
    const answer = page.answers[item];
    // Light fills: the image under a region must stay visible (the crop outlines the current one).
    let rgba = [255, 255, 255, 80];
    if (item === page.current) rgba = [255, 213, 0, 110];
    else if (answer === "unsure") rgba = [150, 150, 150, 150];
    else if (answer === "mixed") rgba = [30, 30, 30, 130];
    else if (answer !== null) rgba = [...page.session.classes[answer].colour, 150];
    for (let i = 0; i < flat.length; i += 2) data.data.set(rgba, 4 * (flat[i + 1] * canvas.width + flat[i]));
  });
  context.putImageData(data, 0, 0);
  return canvas;
}

function drawZoom() {
  const canvas = document.getElementById("zoom");
  const size = canvas.clientWidth;
  const context = fitCanvas(canvas, size, size);
  const { img } = page.entry;
  const local = page.current - page.entry.info.first_item;
  const flat = regionPixels(local);
  const box = bounds(flat);
  const across = Math.max(ZOOM_POINT, 1.4 * Math.max(box.x1 - box.x0, box.y1 - box.y0)) * Math.pow(2, -page.zoomLevel);
  const scale = size / across;
  const originX = (box.x0 + box.x1) / 2 - across / 2, originY = (box.y0 + box.y1) / 2 - across / 2;
  context.fillStyle = "#000";
  context.fillRect(0, 0, size, size);
  // The visible part of the crop (drawImage's source must stay inside the image).
  const sx = Math.max(0, Math.floor(originX)), sy = Math.max(0, Math.floor(originY));
  const ex = Math.min(img.naturalWidth, Math.ceil(originX + across));
  const ey = Math.min(img.naturalHeight, Math.ceil(originY + across));
  context.imageSmoothingEnabled = false;
  if (ex > sx && ey > sy) {
    context.drawImage(img, sx, sy, ex - sx, ey - sy,
                      (sx - originX) * scale, (sy - originY) * scale, (ex - sx) * scale, (ey - sy) * scale);
  }
  const toScreen = (x, y) => [(x - originX) * scale, (y - originY) * scale];
  if (page.session.unit === "point") {
    const [x, y] = toScreen(flat[0], flat[1]);
    ring(context, x, y, scale, scale);
    crosshair(context, x + scale / 2, y + scale / 2, Math.max(scale, 10));
  } else {
    outline(context, flat, toScreen, scale);
  }
}

// The border of a region: the pixel edges between its pixels and the others.
function outline(context, flat, toScreen, scale) {
  const inside = new Set();
  for (let i = 0; i < flat.length; i += 2) inside.add(`${flat[i]},${flat[i + 1]}`);
  context.beginPath();
  for (let i = 0; i < flat.length; i += 2) {
    const x = flat[i], y = flat[i + 1];
    const [left, top] = toScreen(x, y);
    const edges = [[0, -1, 0, 0, 1, 0], [0, 1, 0, 1, 1, 1], [-1, 0, 0, 0, 0, 1], [1, 0, 1, 0, 1, 1]];
    for (const [dx, dy, ax, ay, bx, by] of edges) {
      if (inside.has(`${x + dx},${y + dy}`)) continue;
      context.moveTo(left + ax * scale, top + ay * scale);
      context.lineTo(left + bx * scale, top + by * scale);
    }
  }
  for (const [colour, width] of [["#000", 4], ["#ffd500", 2]]) {
    context.strokeStyle = colour;
    context.lineWidth = width;
    context.stroke();
  }
}

// --- the person's time per answer (the page's hidden time left out) ---

const timer = {
  start: 0, hidden: 0, hiddenSince: null,
  reset() {
    this.start = performance.now();
    this.hidden = 0;
    this.hiddenSince = document.hidden ? this.start : null;
  },
  seconds() {
    const now = performance.now();
    const hidden = this.hidden + (this.hiddenSince === null ? 0 : now - this.hiddenSince);
    return Math.max(0, (now - this.start - hidden) / 1000);
  },
};

document.addEventListener("visibilitychange", () => {
  if (document.hidden) timer.hiddenSince = performance.now();
  else if (timer.hiddenSince !== null) {
    timer.hidden += performance.now() - timer.hiddenSince;
    timer.hiddenSince = null;
  }
});

// --- actions ---

async function give(value) {
  const item = page.current;
  const [x, y] = page.entry.info.anchors[item - page.entry.info.first_item];
  const image = page.session.images[imageOf(item)];
  const reply = await postJson("/api/answer",
                               { image_id: image.image_id, x, y, class: value, seconds: timer.seconds() });
  page.answers[reply.item] = reply.answer;
  page.progress = reply.progress;
  const next = nextUnanswered(item);
  if (next === null) say("All answered. Press Enter (or Finish) to write the labels; Back or an image key to review.");
  else say("");
  await show(next === null ? item : next);
}

async function act(action) {
  const count = page.answers.length;
  const image = imageOf(page.current);
  if (action === "unsure") return give("unsure");
  if (action === "mixed") return page.session.unit === "region" ? give("mixed") : undefined;
  if (action === "back") return show(Math.max(0, page.current - 1));
  if (action === "forward") return show(Math.min(count - 1, page.current + 1));
  if (action === "previous-image" || action === "next-image") {
    const target = imageWithItems(image + (action === "next-image" ? 1 : -1), action === "next-image" ? 1 : -1);
    if (target === null) return say(action === "next-image" ? "This is the last image." : "This is the first image.");
    const first = page.session.images[target].first_item;
    const open = page.answers.slice(first, first + page.session.images[target].items).indexOf(null);
    return show(open < 0 ? first : first + open);
  }
  if (action === "undo") {
    const reply = await postJson("/api/undo", {});
    page.progress = reply.progress;
    if (reply.item === null) return say("Nothing to undo.");
    page.answers[reply.item] = reply.answer;
    const now = reply.answer === null ? "unanswered" : answerName(reply.answer);
    say(`Undone: ${page.session.unit} ${reply.item + 1} is ${now} again.`);
    return show(reply.item);
  }
  if (action === "zoom-in" || action === "zoom-out") {
    page.zoomLevel = Math.max(-3, Math.min(4, page.zoomLevel + (action === "zoom-in" ? 1 : -1)));
    return drawZoom();
  }
  if (action === "save") {
    const reply = await postJson("/api/save", {});
    return say(`Saved ${reply.summary.labeled_total} labeled pixels to ${reply.output}.`);
  }
  if (action === "finish") return finish();
}

async function finish() {
  const left = page.progress.left;
  if (left > 0 && performance.now() > page.finishArmedUntil) {
    page.finishArmedUntil = performance.now() + 5000;
    return say(`${left} ${page.session.unit}s are not answered yet: press Enter (or Finish) again to finish anyway; ` +
      "the same command continues later.");
  }
  const reply = await postJson("/api/finish", {});
  page.finished = true;
  const s = reply.summary;
  const rate = s.labels_per_minute === null ? "" : ` (${s.labels_per_minute.toFixed(1)} ${s.unit}s per minute)`;
  document.getElementById("done-text").textContent =
    `${s.answered} of ${s.items} ${s.unit}s answered${rate}; ` +
    `${s.labeled_total} labeled pixels written to ${reply.output}.`;
  document.getElementById("done").hidden = false;
  document.body.dataset.finished = "1";
}

function say(text, isError) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.classList.toggle("error", Boolean(isError));
}

function enqueue(task) {
  page.queue = page.queue.then(() => (page.finished ? undefined : task())).catch((error) => {
    say(`Not saved: ${error.message}. Is labor annotate still running? Answers given before this one are safe.`, true);
  });
}

const ACTION_KEYS = {
  " ": "unsure", ".": "unsure", m: "mixed", M: "mixed", ArrowLeft: "back", Backspace: "back", ArrowRight: "forward",
  z: "undo", Z: "undo", "[": "previous-image", PageUp: "previous-image", "]": "next-image", PageDown: "next-image",
  "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", Enter: "finish",
};

function onKey(event) {
  if (!page.session || event.altKey || event.metaKey) return;
  let action = null, value = null;
  if (event.ctrlKey) {
    if (event.key === "s" || event.key === "S") action = "save";
    else if (event.key === "z" || event.key === "Z") action = "undo";
    else return;
  } else {
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const found = page.session.classes.find((c) => c.key === key);
    if (found) value = found.index;
    else action = ACTION_KEYS[event.key] || null;
  }
  if (action === null && value === null) return;
  event.preventDefault();
  if (event.repeat) return; // a held key answers once
  enqueue(() => (value !== null ? give(value) : act(action)));
}

// A clicked button gives up the focus, so that Space and Enter keep meaning "unsure" and "finish".
function clicked(button, task) {
  button.blur();
  enqueue(task);
}

// --- start ---

function buildButtons() {
  const holder = document.getElementById("classes");
  for (const c of page.session.classes) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class-button";
    button.dataset.class = String(c.index);
    button.title = `${c.name}${c.key ? ` (key ${c.key})` : ""}`;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${c.colour.join(",")})`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    button.append(swatch, name);
    if (c.key) {
      const key = document.createElement("kbd");
      key.textContent = c.key; // lower case: the letter o is not the digit 0
      button.append(key);
    }
    button.addEventListener("click", () => clicked(button, () => give(c.index)));
    holder.append(button);
  }
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => clicked(button, () => act(button.dataset.action)));
  }
  for (const name of ["save", "finish"]) {
    const button = document.getElementById(name);
    button.addEventListener("click", () => clicked(button, () => act(name)));
  }
  document.getElementById("mixed-button").hidden = page.session.unit !== "region";
}

async function start() {
  page.session = await getJson("/api/session");
  const state = await getJson("/api/state");
  page.answers = state.answers;
  page.progress = state.progress;
  buildButtons();
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => page.entry && render());
  if (page.answers.length === 0) {
    renderProgress();
    say("This selection has no pixels to answer.");
  } else {
    const first = page.answers[0] === null ? 0 : nextUnanswered(0);
    if (first === null) say("Every item is answered already. Review with Back/Forward, or press Enter to finish.");
    else if (page.progress.answered) say(`Continuing: ${page.progress.answered} answered earlier.`);
    await show(first === null ? 0 : first);
  }
  document.body.dataset.ready = "1";
}

start().catch((error) => say(`Cannot start: ${error.message}`, true));
