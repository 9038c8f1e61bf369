// report.html's script: draws the task stream and the peak-memory chart as SVG from the
// JSON in #report-data. Vanilla JS, no network access, text only through textContent.
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);

  function svg(name, attrs, parent) {
    var e = document.createElementNS(SVG_NS, name);
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  function elem(tag, text, parent, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  function num(x) {
    return typeof x === "number" && isFinite(x) ? x : 0;
  }

  function fmtS(s) {
    s = num(s);
    if (s < 10) return s.toFixed(3) + " s";
    if (s < 120) return s.toFixed(1) + " s";
    var t = Math.round(s);
    if (s < 7200) return Math.floor(t / 60) + " min " + String(t % 60).padStart(2, "0") + " s";
    var m = Math.round(s / 60);
    return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  function fmtB(b) {
    b = num(b);
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if (b < 1024) return b + " B";
    var u = 0;
    while (b >= 1024 && u < units.length - 1) { b /= 1024; u++; }
    return (b < 10 ? b.toFixed(2) : b < 100 ? b.toFixed(1) : b.toFixed(0)) + " " + units[u];
  }

  // Axis label at t seconds when ticks are `step` apart.
  function fmtTick(t, step) {
    if (step < 60) return (step < 1 ? t.toFixed(Math.min(3, Math.ceil(-Math.log10(step)))) : t.toFixed(0)) + " s";
    if (step < 3600) return (t / 60).toFixed(step % 60 === 0 ? 0 : 1) + " min";
    return (t / 3600).toFixed(step % 3600 === 0 ? 0 : 1) + " h";
  }

  // 1, 2 or 5 × 10^k (or whole minutes / hours) giving about `n` ticks over `span`.
  function niceStep(span, n) {
    var raw = span / n;
    var candidates = [60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    if (raw >= 45) {
      for (var i = 0; i < candidates.length; i++) if (candidates[i] >= raw) return candidates[i];
    }
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function describe(b) {
    var lines = [];
    var head = b.stage + " #" + b.index + " (" + b.kind + ", cycle " + b.cycle;
    if (b.attempt !== null && b.attempt !== undefined) head += ", attempt " + b.attempt;
    lines.push(head + ")");
    if (b.failed) {
      var why = "FAILED" + (b.error ? ": " + b.error : "");
      if (b.exitCode !== null && b.exitCode !== undefined) why += " (exit code " + b.exitCode + ")";
      lines.push(why);
    }
    lines.push("start +" + fmtS(b.start) + ", took " + fmtS(b.seconds));
    if (b.split) {
      lines.push("read / compute / write: " + fmtS(b.split[0]) + " / " + fmtS(b.split[1]) + " / " + fmtS(b.split[2]));
    }
    var phases = Object.keys(b.phases || {});
    if (phases.length) {
      lines.push("phases: " + phases.map(function (p) { return p + " " + fmtS(b.phases[p]); }).join(", "));
    }
    lines.push("bytes in / out: " + fmtB(b.bytesIn) + " / " + fmtB(b.bytesOut));
    lines.push("windows " + num(b.windows) + ", visibilities " + num(b.visibilities).toLocaleString("en"));
    lines.push("peak RSS: " + (b.peakRss ? fmtB(b.peakRss) : "unknown"));
    lines.push("host: " + (b.host || "unknown") + (b.pid ? ", pid " + b.pid : ""));
    return lines;
  }

  var tip = document.getElementById("tip");
  function showTip(b, ev) {
    tip.textContent = "";
    describe(b).forEach(function (l) { elem("div", l, tip); });
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = Math.max(8, ev.clientX - w - 14);
    if (y + h > window.innerHeight - 8) y = Math.max(8, ev.clientY - h - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  function pin(i) {
    var d = document.getElementById("details");
    d.textContent = "";
    var b = data.bars[i];
    if (!b) return;
    elem("h3", "Selected task", d);
    var ul = elem("ul", null, d, "details");
    describe(b).forEach(function (l) { elem("li", l, ul); });
    var prev = document.querySelectorAll("rect.task.selected");
    for (var k = 0; k < prev.length; k++) prev[k].classList.remove("selected");
    var r = document.querySelector('rect.task[data-i="' + i + '"]');
    if (r) r.classList.add("selected");
  }

  function legend() {
    var box = document.getElementById("legend");
    data.kinds.forEach(function (k) {
      var item = elem("span", null, box, "item");
      elem("span", null, item, "sw k-" + k);
      elem("span", k, item);
    });
    if (data.bars.some(function (b) { return b.failed; })) {
      var item = elem("span", null, box, "item");
      elem("span", null, item, "sw failed");
      elem("span", "failed attempt", item);
    }
  }

  function stream() {
    var box = document.getElementById("stream-chart");
    if (!data.bars.length) {
      elem("p", "No task has finished yet.", box, "note");
      return;
    }
    var wall = Math.max(num(data.wall), 1e-3);
    var nrows = Math.max(data.rows.length, 1);
    var rowH = nrows <= 40 ? 20 : Math.max(3, Math.floor(800 / nrows));
    var showLabels = rowH >= 10;
    var longest = data.rows.reduce(function (m, l) { return Math.max(m, l.length); }, 0);
    var left = showLabels ? Math.min(260, 16 + 7 * longest) : 60;
    var width = Math.max(800, box.clientWidth || 1200);
    var plotW = width - left - 16, top = 8, height = top + nrows * rowH + 34;
    var s = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, "class": "stream", role: "img" }, box);
    svg("title", {}, s).textContent = "Task stream of " + data.job;
    var defs = svg("defs", {}, s);
    var pat = svg("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
    svg("rect", { width: 6, height: 6, "class": "hatch-bg" }, pat);
    svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, "class": "hatch-line" }, pat);

    for (var r = 0; r < nrows; r++) {
      if (r % 2 === 1) svg("rect", { x: left, y: top + r * rowH, width: plotW, height: rowH, "class": "band" }, s);
      if (showLabels && r < data.rows.length) {
        svg("text", { x: left - 6, y: top + r * rowH + rowH / 2, "class": "rowlabel" }, s).textContent = data.rows[r];
      }
    }
    var step = niceStep(wall, 10);
    var axisY = top + nrows * rowH;
    svg("line", { x1: left, y1: axisY, x2: left + plotW, y2: axisY, "class": "axis" }, s);
    for (var t = 0; t <= wall + 1e-9; t += step) {
      var x = left + (t / wall) * plotW;
      svg("line", { x1: x, y1: top, x2: x, y2: axisY, "class": "grid" }, s);
      svg("line", { x1: x, y1: axisY, x2: x, y2: axisY + 5, "class": "axis" }, s);
      svg("text", { x: x, y: axisY + 18, "class": "tick" }, s).textContent = fmtTick(t, step);
    }
    svg("text", { x: left + plotW, y: axisY + 32, "class": "axislabel" }, s).textContent = "time since start";

    var g = svg("g", { "class": "bars" }, s);
    data.bars.forEach(function (b, i) {
      var x = left + (num(b.start) / wall) * plotW;
      var w = Math.max(1, (num(b.seconds) / wall) * plotW);
      svg("rect", {
        x: x.toFixed(2), y: top + b.row * rowH + 1, width: w.toFixed(2), height: Math.max(1, rowH - 2),
        "class": "task" + (b.failed ? " failed" : "") + " k-" + b.kind,
        "data-stage": b.stage, "data-index": b.index, "data-attempt": b.attempt === null ? "" : b.attempt,
        "data-i": i
      }, g);
    });
    g.addEventListener("mousemove", function (ev) {
      var i = ev.target.getAttribute("data-i");
      if (i !== null) showTip(data.bars[+i], ev);
    });
    g.addEventListener("mouseleave", function () { tip.hidden = true; });
    g.addEventListener("click", function (ev) {
      var i = ev.target.getAttribute("data-i");
      if (i !== null) {
        pin(+i);
        var b = data.bars[+i];
        history.replaceState(null, "", "#task=" + encodeURIComponent(b.stage) + "/" + b.index + (b.attempt ? "/" + b.attempt : ""));
      }
    });
    s.setAttribute("data-bars", String(data.bars.length));
  }

  function memory() {
    var box = document.getElementById("memory-chart");
    var idx = [];
    data.bars.forEach(function (b, i) { if (!b.failed && num(b.peakRss) > 0) idx.push(i); });
    if (!idx.length) return;
    idx.sort(function (a, b) { return data.bars[b].peakRss - data.bars[a].peakRss; });
    var est = num(data.estTaskMemory);
    var top = 14, h = 160, left = 80;
    var width = Math.max(800, box.clientWidth || 1200), plotW = width - left - 16;
    var ymax = Math.max(data.bars[idx[0]].peakRss, est) * 1.08;
    var s = svg("svg", { width: width, height: top + h + 24, "class": "memory", role: "img" }, box);
    svg("title", {}, s).textContent = "Peak RSS per task, largest first";
    var bw = plotW / idx.length;
    idx.forEach(function (i, k) {
      var b = data.bars[i];
      var bh = (b.peakRss / ymax) * h;
      svg("rect", {
        x: (left + k * bw).toFixed(2), y: (top + h - bh).toFixed(2), width: Math.max(0.5, bw - (bw > 3 ? 1 : 0)).toFixed(2),
        height: bh.toFixed(2), "class": "mem k-" + b.kind, "data-stage": b.stage, "data-index": b.index
      }, s).appendChild(document.createElementNS(SVG_NS, "title")).textContent =
        b.stage + " #" + b.index + ": " + fmtB(b.peakRss) + (b.host ? " on " + b.host : "");
    });
    svg("line", { x1: left, y1: top + h, x2: left + plotW, y2: top + h, "class": "axis" }, s);
    svg("text", { x: left - 6, y: top + 4, "class": "rowlabel" }, s).textContent = fmtB(ymax);
    svg("text", { x: left - 6, y: top + h, "class": "rowlabel" }, s).textContent = "0";
    if (est > 0) {
      var y = top + h - (est / ymax) * h;
      svg("line", { x1: left, y1: y, x2: left + plotW, y2: y, "class": "estimate" }, s);
      svg("text", { x: left + plotW, y: y - 4, "class": "axislabel" }, s).textContent = "estimate " + fmtB(est);
    }
    svg("text", { x: left + plotW, y: top + h + 18, "class": "axislabel" }, s).textContent = idx.length + " tasks";
  }

  function fromHash() {
    var m = /^#task=([^/]+)\/(\d+)(?:\/(\d+))?$/.exec(location.hash);
    if (!m) return;
    var stage = decodeURIComponent(m[1]), index = +m[2], attempt = m[3] === undefined ? null : +m[3];
    var best = -1;
    data.bars.forEach(function (b, i) {
      if (b.stage !== stage || b.index !== index) return;
      if (attempt !== null && b.attempt !== attempt) return;
      if (best < 0 || (data.bars[best].failed && !b.failed)) best = i;
    });
    if (best >= 0) pin(best);
  }

  try {
    legend();
    stream();
    memory();
    fromHash();
    document.body.setAttribute("data-rendered", "true");
  } catch (e) {
    var note = elem("p", "This report's script failed: " + e, null, "note bad");
    document.body.insertBefore(note, document.body.firstChild);
    throw e;
  }
})();
