// labor annotate: the page. Plain JavaScript, no build step, no libraries.
// The server is the source of truth: every answer is posted (and journaled there) before the page moves on.
"use strict";

const ZOOM_POINT = 32; // image pixels across the zoomed crop around a point, at zoom level 0
const MARGIN = 28; // screen pixels around the image on the full canvas, so marks at its edges stay whole
const OPACITY_STEPS = [0, 0.3, 0.6, 1];
const page = {
  session: null, // /api/session: classes, images, unit, suggestions
  answers: [], // per item: class index, "unsure", "mixed" or null
  splits: new Map(), // item -> {class index or "unsure": [x0, y0, ...]}: pixels answered otherwise
  progress: null,
  current: 0, // the item shown
  images: new Map(), // image index -> promise of {info, img}
  entry: null, // the current image's {info, img}
  view: null, // the full canvas's {left, top, scale}
  zoomView: null, // the zoom canvas's {originX, originY, scale}
  zoomLevel: 0,
  opacity: 0.6,
  keys: 0, // key presses and clicks since the last answer
  split: null, // while splitting: {item, values: Map "x,y" -> value or null, brush}
  finishArmedUntil: 0,
  finished: false,
  queue: Promise.resolve(), // key presses and clicks, handled one after another
};

// Every key, once: the key handler and the help overlay both read this table.
const KEY_TABLE = [
  ["1 … 9, 0, q … o", "give the class on the button (splitting: choose the brush's class)"],
  ["a", "take A's suggestion (the class with the dashed outline)"],
  ["Space or .", "unsure: stored as ignored (255), not asked again"],
  ["m", "mixed (regions): leave the region out of the labels"],
  ["s", "split the region: paint some of its pixels with another class in the zoom"],
  ["Enter", "finish: write the labels and stop (press twice with items left); splitting: save the split"],
  ["Esc", "close this help, cancel a split or the go-to box"],
  ["← or Backspace, →", "the previous, next point or region (to look again; a new answer replaces the old)"],
  ["z or Ctrl+Z", "undo the last answer"],
  ["Shift+Z, Ctrl+Shift+Z or Ctrl+Y", "redo: give back the answer undone"],
  ["[ or PageUp, ] or PageDown", "the previous, next image (its first open item)"],
  ["g", "go to image N (or click it in the strip of images)"],
  ["+, -", "zoom in, out"],
  ["v", "overlay opacity: 0, 30, 60, 100% (also the slider at the top)"],
  ["click", "on the image or the zoom: select the point or region there"],
  ["Ctrl+S", "write the labels file now, and go on"],
  ["? or F1", "this help"],
];

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
  if (!page.images.has(index)) {
    const entry = (async () => {
      const [info, img] = await Promise.all([getJson(`/api/image/${index}`), loadPicture(`/image/${index}`)]);
      info.splits.forEach((split, k) => {
        const item = info.first_item + k;
        if (split && !page.splits.has(item)) page.splits.set(item, split);
      });
      return { info, img };
    })();
    page.images.set(index, entry);
    entry.catch(() => page.images.delete(index));
  }
  return page.images.get(index);
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

function firstOpenItem(index) {
  const image = page.session.images[index];
  const open = page.answers.slice(image.first_item, image.first_item + image.items).indexOf(null);
  return image.first_item + Math.max(0, open);
}

const local = () => page.current - page.entry.info.first_item;
const suggestionOf = (item) => page.entry.info.suggested[item - page.entry.info.first_item];

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
  const k = local();
  const unit = session.unit;
  const leftOut = page.entry.info.left_out ? page.entry.info.left_out.length / 2 : 0;
  document.getElementById("image-title").textContent =
    `image ${index + 1} of ${session.images.length}: ${image.image_id} (${image.width}x${image.height})` +
    (leftOut ? ` · ${plural(leftOut, "pixel")} of small fragments not asked` : "");
  const answer = page.answers[current];
  const [x, y] = page.entry.info.anchors[k];
  const title = document.getElementById("item-title");
  title.textContent = `${unit} ${k + 1} of ${image.items} in this image` +
    (unit === "point" ? ` at x=${x}, y=${y}` : `, ${plural(regionPixels(k).length / 2, "pixel")}`) + " — ";
  const strong = document.createElement("strong");
  strong.textContent = answer === null ? "not answered yet" : `answered: ${answerName(answer)}` +
    (page.splits.has(current) ? " (split)" : "");
  title.appendChild(strong);
  renderSuggestion(suggestionOf(current));
  for (const button of document.querySelectorAll("[data-class]")) {
    button.classList.toggle("chosen", String(answer) === button.dataset.class);
    button.classList.toggle("brush", page.split !== null && String(page.split.brush) === button.dataset.class);
  }
  for (const button of document.querySelectorAll("[data-action]")) {
    button.classList.toggle("chosen", answer === button.dataset.action);
  }
  renderProgress();
  drawFull();
  drawZoom();
}

function renderSuggestion(suggested) {
  const line = document.getElementById("suggestion");
  line.textContent = "";
  for (const button of document.querySelectorAll("[data-class]")) {
    button.classList.toggle("suggested", suggested !== null && String(suggested) === button.dataset.class);
  }
  if (suggested === null || suggested === undefined) {
    line.textContent = page.session.suggestions ? "A has no class for this one." : "";
    return;
  }
  const c = page.session.classes[suggested];
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = `rgb(${c.colour.join(",")})`;
  const name = document.createElement("strong");
  name.textContent = c.name;
  const key = document.createElement("kbd");
  key.textContent = "a";
  line.append("A suggests ", swatch, " ", name, ": press ", key, " to take it");
}

function plural(count, word) {
  return `${count} ${count === 1 ? word : word + (word.endsWith("s") ? "es" : "s")}`;
}

function answerName(answer) {
  return typeof answer === "number" ? page.session.classes[answer].name : answer;
}

function renderProgress() {
  const p = page.progress;
  const unit = page.session.unit;
  document.getElementById("progress").textContent =
    `${p.answered} of ${plural(p.items, unit)} answered · ${p.left} left · images done ${p.images_done} of ${p.images}`;
  document.getElementById("bar-fill").style.width = `${p.items ? (100 * p.answered) / p.items : 100}%`;
  document.body.dataset.answered = String(p.answered);
  document.body.dataset.current = String(page.current);
  renderStrip();
}

// --- the strip of images: each image's progress, click to go there ---

function buildStrip() {
  const strip = document.getElementById("strip");
  page.session.images.forEach((image, index) => {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.index = String(index);
    strip.append(cell);
  });
  strip.addEventListener("click", (event) => {
    const cell = event.target.closest(".cell");
    if (!cell) return;
    page.keys += 1;
    enqueue(() => goToImage(Number(cell.dataset.index)));
  });
}

function renderStrip() {
  const cells = document.getElementById("strip").children;
  const current = imageOf(page.current);
  page.session.images.forEach((image, index) => {
    const answered = page.answers.slice(image.first_item, image.first_item + image.items)
      .filter((a) => a !== null).length;
    const cell = cells[index];
    const done = image.items ? (100 * answered) / image.items : 100;
    cell.style.setProperty("--done", `${done}%`);
    cell.classList.toggle("complete", answered === image.items);
    cell.classList.toggle("empty", image.items === 0);
    cell.classList.toggle("current", index === current);
    cell.title = `image ${index + 1}: ${image.image_id}, ${answered} of ${image.items} answered`;
  });
  const cell = cells[current];
  if (cell) cell.scrollIntoView({ block: "nearest", inline: "nearest" });
}

async function goToImage(index) {
  if (index < 0 || index >= page.session.images.length) return say(`There is no image ${index + 1}.`);
  if (page.session.images[index].items === 0) return say(`Image ${index + 1} has nothing to answer.`);
  return show(firstOpenItem(index));
}

// --- drawing ---

function regionPixels(k) {
  const pixels = page.entry.info.pixels;
  return pixels ? pixels[k] : page.entry.info.anchors[k];
}

function rgba(answer, alpha) {
  if (answer === null) return [255, 255, 255, alpha];
  if (answer === "unsure") return [150, 150, 150, alpha];
  if (answer === "mixed") return [30, 30, 30, alpha];
  return [...page.session.classes[answer].colour, alpha];
}

const css = ([r, g, b, a]) => `rgba(${r},${g},${b},${a})`;

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
  const maxHeight = Math.max(160, window.innerHeight - 150) - 2 * MARGIN;
  const scale = Math.min((width - 2 * MARGIN) / img.naturalWidth, maxHeight / img.naturalHeight);
  const context = fitCanvas(canvas, width, img.naturalHeight * scale + 2 * MARGIN);
  const left = (width - img.naturalWidth * scale) / 2, top = MARGIN;
  page.view = { left, top, scale };
  context.imageSmoothingEnabled = scale < 1;
  context.drawImage(img, left, top, img.naturalWidth * scale, img.naturalHeight * scale);
  const k = local();
  if (page.session.unit === "region") {
    fillRegions(context, (x, y) => [left + x * scale, top + y * scale], Math.max(scale, 2), page.opacity);
    const box = bounds(regionPixels(k));
    ring(context, left + box.x0 * scale - 6, top + box.y0 * scale - 6,
         (box.x1 - box.x0) * scale + 12, (box.y1 - box.y0) * scale + 12);
    return;
  }
  info.anchors.forEach(([x, y], j) => {
    if (j !== k) dot(context, left + (x + 0.5) * scale, top + (y + 0.5) * scale, page.answers[info.first_item + j]);
  });
  const [x, y] = info.anchors[k];
  crosshair(context, left + (x + 0.5) * scale, top + (y + 0.5) * scale, 12);
}

// Every region of the image, each pixel a square of at least `size` screen pixels (a one-pixel band
// of a large image stays visible), in its answer's colour; the current one in yellow.
function fillRegions(context, toScreen, size, alpha) {
  const info = page.entry.info;
  info.pixels.forEach((flat, k) => {
    const item = info.first_item + k;
    const current = item === page.current;
    const colours = pixelColours(item, current, alpha);
    for (let i = 0; i < flat.length; i += 2) {
      const colour = colours(flat[i], flat[i + 1]);
      if (colour === null) continue;
      context.fillStyle = colour;
      const [sx, sy] = toScreen(flat[i], flat[i + 1]);
      context.fillRect(sx, sy, size, size);
    }
  });
}

// (x, y) -> the CSS colour of a region pixel, or null for none.
function pixelColours(item, current, alpha) {
  if (page.split !== null && page.split.item === item) {
    return (x, y) => {
      const value = page.split.values.get(`${x},${y}`);
      return value === null ? css([255, 255, 255, 0.5 * alpha]) : css(rgba(value, alpha));
    };
  }
  const answer = page.answers[item];
  if (current && answer === null) {
    const yellow = css([255, 213, 0, Math.max(0.25, alpha)]);
    return () => yellow;
  }
  const base = css(answer === null ? [0, 255, 255, alpha] : rgba(answer, alpha)); // open regions in cyan
  const split = page.splits.get(item);
  if (!split || alpha === 0) return () => (alpha === 0 ? null : base);
  const other = new Map();
  for (const [word, flat] of Object.entries(split)) {
    const colour = css(rgba(word === "unsure" ? "unsure" : Number(word), alpha));
    for (let i = 0; i < flat.length; i += 2) other.set(`${flat[i]},${flat[i + 1]}`, colour);
  }
  return (x, y) => other.get(`${x},${y}`) || base;
}

function dot(context, x, y, answer) {
  if (page.opacity === 0) return;
  context.beginPath();
  context.arc(x, y, answer === null ? 3.5 : 4.5, 0, 2 * Math.PI);
  context.fillStyle = css(rgba(answer, page.opacity));
  context.fill();
  context.lineWidth = 1.5;
  context.strokeStyle = `rgba(0,0,0,${page.opacity})`;
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
      context.lineTo(x + dx * radius * 2.2, y + dy * radius * 2.2);
    }
    context.stroke();
  }
}

function ring(context, x, y, width, height) {
  for (const [colour, lineWidth] of [["#000", 4], ["#ffd500", 2]]) {
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

function drawZoom() {
  const canvas = document.getElementById("zoom");
  const size = canvas.clientWidth;
  const context = fitCanvas(canvas, size, size);
  const { img } = page.entry;
  const flat = regionPixels(local());
  const box = bounds(flat);
  const across = Math.max(ZOOM_POINT, 1.4 * Math.max(box.x1 - box.x0, box.y1 - box.y0)) * Math.pow(2, -page.zoomLevel);
  const scale = size / across;
  const originX = (box.x0 + box.x1) / 2 - across / 2, originY = (box.y0 + box.y1) / 2 - across / 2;
  page.zoomView = { originX, originY, scale };
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
    const gap = 3; // the ring sits outside the pixel: the pixel itself stays visible
    ring(context, x - gap, y - gap, scale + 2 * gap, scale + 2 * gap);
    crosshair(context, x + scale / 2, y + scale / 2, Math.max(scale, 10) + gap);
    return;
  }
  // Lighter in the zoom: the pixels under a fill must stay readable.
  fillRegions(context, toScreen, scale, Math.min(page.opacity, 0.45));
  outline(context, flat, toScreen, scale);
}

// The border of a region, drawn just outside its pixels (a one-pixel region stays visible inside it).
function outline(context, flat, toScreen, scale) {
  const inside = new Set();
  for (let i = 0; i < flat.length; i += 2) inside.add(`${flat[i]},${flat[i + 1]}`);
  const gap = 2.5;
  context.beginPath();
  for (let i = 0; i < flat.length; i += 2) {
    const x = flat[i], y = flat[i + 1];
    const [left, top] = toScreen(x, y);
    const right = left + scale, bottom = top + scale;
    const edges = [
      [0, -1, left - gap, top - gap, right + gap, top - gap], [0, 1, left - gap, bottom + gap, right + gap, bottom + gap],
      [-1, 0, left - gap, top - gap, left - gap, bottom + gap], [1, 0, right + gap, top - gap, right + gap, bottom + gap],
    ];
    for (const [dx, dy, ax, ay, bx, by] of edges) {
      if (inside.has(`${x + dx},${y + dy}`)) continue;
      context.moveTo(ax, ay);
      context.lineTo(bx, by);
    }
  }
  for (const [colour, width] of [["#000", 3], ["#ffd500", 1.5]]) {
    context.strokeStyle = colour;
    context.lineWidth = width;
    context.stroke();
  }
}

// --- clicking on the image or the zoom selects the item there ---

function itemAt(x, y, reach) { // image coordinates; reach: image pixels a click may miss by
  const info = page.entry.info;
  let best = null, bestDistance = Infinity;
  const flats = info.pixels || info.anchors;
  flats.forEach((flat, k) => {
    for (let i = 0; i < flat.length; i += 2) {
      const distance = Math.max(Math.abs(flat[i] + 0.5 - x), Math.abs(flat[i + 1] + 0.5 - y));
      if (distance < bestDistance) { bestDistance = distance; best = k; }
    }
  });
  return best !== null && bestDistance <= reach + 0.5 ? info.first_item + best : null;
}

function canvasPoint(event) {
  const rect = event.target.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

function onFullClick(event) {
  if (!page.view || page.split !== null) return;
  const [sx, sy] = canvasPoint(event);
  const { left, top, scale } = page.view;
  selectAt((sx - left) / scale, (sy - top) / scale, 10 / scale);
}

function onZoomPointer(event) {
  if (!page.zoomView) return;
  const [sx, sy] = canvasPoint(event);
  const { originX, originY, scale } = page.zoomView;
  const x = originX + sx / scale, y = originY + sy / scale;
  if (page.split !== null) {
    if (event.type === "pointerdown" || event.buttons === 1) paint(Math.floor(x), Math.floor(y));
    return;
  }
  if (event.type === "pointerdown") selectAt(x, y, 6 / scale);
}

function selectAt(x, y, reach) {
  const item = itemAt(x, y, Math.max(reach, 0.5));
  page.keys += 1;
  if (item === null) return say("Nothing to answer there: click on a point or region.");
  enqueue(() => show(item));
}

// --- splitting a region: a brush over its pixels in the zoom ---

function startSplit() {
  if (page.session.unit !== "region") return;
  const item = page.current;
  const answer = page.answers[item];
  const start = typeof answer === "number" || answer === "unsure" ? answer : suggestionOf(item);
  const values = new Map();
  const flat = regionPixels(local());
  for (let i = 0; i < flat.length; i += 2) values.set(`${flat[i]},${flat[i + 1]}`, start === undefined ? null : start);
  const split = page.splits.get(item);
  if (split) {
    for (const [word, pixels] of Object.entries(split)) {
      for (let i = 0; i < pixels.length; i += 2) values.set(`${pixels[i]},${pixels[i + 1]}`, word === "unsure" ? word : Number(word));
    }
  }
  page.split = { item, values, brush: null };
  document.body.classList.add("splitting");
  document.getElementById("split-bar").hidden = false;
  say("Splitting: press a class key to choose the brush, then paint over the region's pixels in the zoom.");
  render();
}

function paint(x, y) {
  const key = `${x},${y}`;
  if (!page.split.values.has(key)) return;
  if (page.split.brush === null) return say("Choose the brush's class first: press its key.");
  if (page.split.values.get(key) === page.split.brush) return;
  page.split.values.set(key, page.split.brush);
  drawFull();
  drawZoom();
}

function endSplit(message) {
  page.split = null;
  document.body.classList.remove("splitting");
  document.getElementById("split-bar").hidden = true;
  say(message || "");
  render();
}

async function saveSplit() {
  const counts = new Map();
  let open = 0;
  for (const value of page.split.values.values()) {
    if (value === null) open += 1;
    else counts.set(value, (counts.get(value) || 0) + 1);
  }
  if (open) return say(`${plural(open, "pixel")} of the region have no class yet: paint them, or press Esc.`);
  const base = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const split = {};
  for (const [key, value] of page.split.values) {
    if (value === base) continue;
    const word = value === "unsure" ? "unsure" : page.session.classes[value].name;
    (split[word] = split[word] || []).push(...key.split(",").map(Number));
  }
  page.split = null;
  document.body.classList.remove("splitting");
  document.getElementById("split-bar").hidden = true;
  return give(base, { split });
}

// --- the person's time per answer (the page's hidden time left out; the server caps each answer) ---

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

async function give(value, extra) {
  const item = page.current;
  const [x, y] = page.entry.info.anchors[item - page.entry.info.first_item];
  const image = page.session.images[imageOf(item)];
  const body = { image_id: image.image_id, x, y, class: value, seconds: timer.seconds(), keys: page.keys, ...extra };
  const reply = await postJson("/api/answer", body);
  page.keys = 0;
  applyChange(reply);
  const next = nextUnanswered(item);
  if (next === null) say("All answered. Press Enter (or Finish) to write the labels; Back or an image key to review.");
  else say("");
  await show(next === null ? item : next);
}

function applyChange(reply) {
  page.progress = reply.progress;
  if (reply.item === null) return;
  page.answers[reply.item] = reply.answer;
  if (reply.split) page.splits.set(reply.item, reply.split);
  else page.splits.delete(reply.item);
}

async function step(action) {
  const reply = await postJson(`/api/${action}`, {});
  applyChange(reply);
  if (reply.item === null) return say(action === "undo" ? "Nothing to undo." : "Nothing to redo.");
  const now = reply.answer === null ? "unanswered" : answerName(reply.answer);
  say(`${action === "undo" ? "Undone" : "Redone"}: ${page.session.unit} ${reply.item + 1} is ${now}` +
      `${action === "undo" ? " again" : ""}.`);
  return show(reply.item);
}

const ACTIONS = {
  accept: () => {
    const suggested = suggestionOf(page.current);
    if (suggested === null || suggested === undefined) return say("A has no suggestion for this one.");
    return give(suggested, { accepted: true });
  },
  unsure: () => give("unsure"),
  mixed: () => (page.session.unit === "region" ? give("mixed") : undefined),
  split: () => startSplit(),
  back: () => show(Math.max(0, page.current - 1)),
  forward: () => show(Math.min(page.answers.length - 1, page.current + 1)),
  "previous-image": () => imageStep(-1),
  "next-image": () => imageStep(1),
  goto: () => openGoto(),
  undo: () => step("undo"),
  redo: () => step("redo"),
  "zoom-in": () => zoom(1),
  "zoom-out": () => zoom(-1),
  opacity: () => setOpacity(OPACITY_STEPS[(OPACITY_STEPS.indexOf(page.opacity) + 1) % OPACITY_STEPS.length]),
  help: () => toggleHelp(),
  save: async () => {
    const reply = await postJson("/api/save", {});
    say(`Saved ${plural(reply.summary.labeled_total, "labeled pixel")} to ${reply.output}.`);
  },
  finish: () => finish(),
};

function imageStep(direction) {
  const target = imageWithItems(imageOf(page.current) + direction, direction);
  if (target === null) return say(direction > 0 ? "This is the last image." : "This is the first image.");
  return show(firstOpenItem(target));
}

function zoom(direction) {
  page.zoomLevel = Math.max(-3, Math.min(4, page.zoomLevel + direction));
  drawZoom();
}

function setOpacity(value) {
  page.opacity = value;
  document.getElementById("opacity").value = String(Math.round(value * 100));
  drawFull();
  drawZoom();
}

async function finish() {
  const left = page.progress.left;
  if (left > 0 && performance.now() > page.finishArmedUntil) {
    page.finishArmedUntil = performance.now() + 5000;
    return say(`${plural(left, page.session.unit)} not answered yet: press Enter (or Finish) again to finish ` +
      "anyway; the same command continues later.");
  }
  const reply = await postJson("/api/finish", {});
  page.finished = true;
  say("");
  const s = reply.summary;
  const rate = s.labels_per_minute === null ? "" : ` (${s.labels_per_minute.toFixed(1)} ${s.unit}s per minute)`;
  document.getElementById("done-text").textContent =
    `${s.answered} of ${plural(s.items, s.unit)} answered${rate}, ${plural(s.keypresses, "keypress")}; ` +
    `${plural(s.labeled_total, "labeled pixel")} written to ${reply.output}.`;
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

// --- help and go-to ---

function buildHelp() {
  const table = document.getElementById("help-keys");
  for (const [keys, does] of KEY_TABLE) {
    const row = table.insertRow();
    row.insertCell().textContent = keys;
    row.insertCell().textContent = does;
  }
  const classes = table.insertRow();
  classes.insertCell().textContent = "class keys";
  classes.insertCell().textContent = page.session.classes.filter((c) => c.key).map((c) => `${c.key} ${c.name}`).join(", ");
}

function toggleHelp(open) {
  const help = document.getElementById("help");
  help.hidden = open === undefined ? !help.hidden : !open;
  document.body.dataset.help = help.hidden ? "0" : "1";
}

function openGoto() {
  const form = document.getElementById("goto");
  const input = document.getElementById("goto-number");
  input.max = String(page.session.images.length);
  input.value = String(imageOf(page.current) + 1);
  form.hidden = false;
  input.focus();
  input.select();
}

function closeGoto() {
  document.getElementById("goto").hidden = true;
  document.getElementById("goto-number").blur();
}

// --- keys ---

const ACTION_KEYS = {
  a: "accept", A: "accept", " ": "unsure", ".": "unsure", m: "mixed", M: "mixed", s: "split", S: "split",
  ArrowLeft: "back", Backspace: "back", ArrowRight: "forward", z: "undo", Z: "redo",
  "[": "previous-image", PageUp: "previous-image", "]": "next-image", PageDown: "next-image", g: "goto", G: "goto",
  "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", v: "opacity", V: "opacity", "?": "help", F1: "help",
  Enter: "finish",
};

function keyAction(event) { // -> {action} or {value: class index}, or null
  if (event.ctrlKey) {
    const key = event.key.toLowerCase();
    if (key === "s") return { action: "save" };
    if (key === "z") return { action: event.shiftKey ? "redo" : "undo" };
    if (key === "y") return { action: "redo" };
    return null;
  }
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const found = page.session.classes.find((c) => c.key === key);
  if (found) return { value: found.index };
  const action = ACTION_KEYS[event.key];
  return action ? { action } : null;
}

function onKey(event) {
  if (!page.session || event.altKey || event.metaKey || page.finished) return;
  const target = event.target;
  if (target && target.closest && target.closest("#goto")) {
    if (event.key === "Escape") closeGoto();
    return; // typing a number: the form handles Enter
  }
  const onControl = target && target.closest && target.closest("button, input, select, a");
  if (onControl && (event.key === "Enter" || event.key === " ")) return; // the focused control's own press
  if (!document.getElementById("help").hidden) {
    if (event.key === "Escape" || event.key === "?" || event.key === "F1") { event.preventDefault(); toggleHelp(false); }
    return;
  }
  if (event.key === "Escape") {
    if (page.split !== null) endSplit("Split cancelled.");
    return;
  }
  const found = keyAction(event);
  if (found === null) return;
  event.preventDefault();
  if (event.repeat) return; // a held key answers once
  page.keys += 1;
  if (page.split !== null) return splitKey(found);
  enqueue(() => (found.value !== undefined ? give(found.value) : ACTIONS[found.action]()));
}

function splitKey(found) { // while splitting, class keys choose the brush and Enter saves
  if (found.value !== undefined || found.action === "unsure") {
    page.split.brush = found.value !== undefined ? found.value : "unsure";
    say(`Brush: ${answerName(page.split.brush)}. Paint the region's pixels in the zoom; Enter saves.`);
    return render();
  }
  if (found.action === "finish") return enqueue(() => saveSplit());
  if (["zoom-in", "zoom-out", "opacity", "help"].includes(found.action)) return enqueue(() => ACTIONS[found.action]());
  say("Splitting: Enter saves the split, Esc cancels it.");
}

// A clicked button gives up the focus, so that Space and Enter keep meaning "unsure" and "finish".
function clicked(button, task) {
  button.blur();
  page.keys += 1;
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
    button.addEventListener("click", () => {
      if (page.split !== null) { button.blur(); return splitKey({ value: c.index }); }
      clicked(button, () => give(c.index));
    });
    holder.append(button);
  }
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => clicked(button, () => ACTIONS[button.dataset.action]()));
  }
  for (const name of ["save", "finish"]) {
    const button = document.getElementById(name);
    button.addEventListener("click", () => clicked(button, () => ACTIONS[name]()));
  }
  document.getElementById("help-button").addEventListener("click", (event) => { event.target.blur(); toggleHelp(); });
  for (const element of document.querySelectorAll(".region-only")) element.hidden = page.session.unit !== "region";
}

function connect() {
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => page.entry && render());
  document.getElementById("full").addEventListener("click", onFullClick);
  const zoomCanvas = document.getElementById("zoom");
  zoomCanvas.addEventListener("pointerdown", onZoomPointer);
  zoomCanvas.addEventListener("pointermove", onZoomPointer);
  document.getElementById("opacity").addEventListener("input", (event) => setOpacity(Number(event.target.value) / 100));
  document.getElementById("goto").addEventListener("submit", (event) => {
    event.preventDefault();
    const number = Number(document.getElementById("goto-number").value);
    closeGoto();
    page.keys += 1;
    enqueue(() => goToImage(number - 1));
  });
}

async function start() {
  page.session = await getJson("/api/session");
  const state = await getJson("/api/state");
  page.answers = state.answers;
  page.progress = state.progress;
  buildButtons();
  buildHelp();
  buildStrip();
  connect();
  if (page.answers.length === 0) {
    renderProgress();
    say("This selection has no pixels to answer.");
  } else {
    const first = page.answers[0] === null ? 0 : nextUnanswered(0);
    if (first === null) say("Every item is answered already. Review with Back/Forward, or press Enter to finish.");
    else if (page.progress.answered) say(`Continuing: ${page.progress.answered} answered earlier.`);
    else say("Press ? for every key.");
    await show(first === null ? 0 : first);
  }
  document.body.dataset.ready = "1";
}

start().catch((error) => say(`Cannot start: ${error.message}`, true));
