/* swift-ext run report: charts (plotly.js) and the completion browser. Data come from the JSON blocks of
   this file (report-model, report-images, c-<run>-<step>), or from the swift-ext report server (--serve). */
(function () {
  "use strict";
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#7f7f7f", "#bcbd22"];
  var DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
  var MODEL = readJSON("report-model");
  if (!MODEL.series) MODEL.series = MODEL.runs.map(function (r, i) { return readJSON("report-series-" + i) || {}; });
  var IMAGES = readJSON("report-images") || {};
  var CHUNKS = {};           // "run-step" -> parsed chunk
  var PAGE = 200;            // completions rendered before "show more"
  var state = {run: 0, step: null, q: "", fr: "", min: "", max: "", sort: "", dir: "desc", shown: PAGE};
  var rendered = {};         // chart id -> {trace name: points}

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") el.textContent = attrs[k];
      else if (k === "cls") el.className = attrs[k];
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), attrs[k]);
      else el.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) el.appendChild(c); });
    return el;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    var a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(2) : String(Math.round(v * 1e4) / 1e4);
  }
  // plotly.js reads its strings (titles, legend names, axis labels, hover text, annotations) as pseudo-HTML:
  // <a href>, <span style="...url(...)">. Every string from the run's files goes through esc() first, so it
  // is shown as text and nothing in it can fetch a URL or render a link.
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
                    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  function rgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // -- charts ------------------------------------------------------------------------------------------
  function traces(chart) {
    var out = [], multi = MODEL.runs.length > 1, names = {};
    MODEL.runs.forEach(function (run, ri) {
      var series = MODEL.series[ri] || {};
      chart.keys.forEach(function (key, ki) {
        var points = series[key];
        if (!points || !points.length) return;
        var color = PALETTE[(multi ? ri : ki) % PALETTE.length];
        var xs = points.map(function (p) { return p[0]; }), ys = points.map(function (p) { return p[1]; });
        var name = multi ? run.name + (chart.keys.length > 1 ? ": " + key : "") : (chart.keys.length > 1 ? key : run.name);
        var label = esc(name);
        var band = chart.bands[key] && series[chart.bands[key]];
        if (band) {
          var sd = {};
          band.forEach(function (p) { sd[p[0]] = p[1]; });
          var line = {width: 0}, common = {x: xs, mode: "lines", line: line, hoverinfo: "skip", showlegend: false,
                                           type: "scatter", meta: "band"};
          out.push(Object.assign({y: ys.map(function (y, i) { return y + (sd[xs[i]] || 0); })}, common));
          out.push(Object.assign({y: ys.map(function (y, i) { return y - (sd[xs[i]] || 0); }), fill: "tonexty",
                                  fillcolor: rgba(color, 0.18)}, common));
        }
        out.push({x: xs, y: ys, name: label, type: "scatter", mode: xs.length <= 400 ? "lines+markers" : "lines",
                  marker: {size: 4}, line: {color: color, width: 1.6, dash: DASHES[(multi ? ki : 0) % DASHES.length]},
                  hovertemplate: "step %{x}: %{y:.4g}<extra>%{fullData.name}</extra>"});
        names[name] = xs.length;
      });
    });
    rendered[chart.id] = names;
    return out;
  }
  function layout(chart) {
    return {title: {text: esc(chart.title), font: {size: 13}, x: 0.01, xanchor: "left"}, margin: {l: 50, r: 10, t: 34, b: 34}, height: 260,
            xaxis: {title: {text: "step", font: {size: 10}}}, showlegend: true,
            legend: {orientation: "h", y: -0.25, font: {size: 10}}, uirevision: chart.id};
  }
  var sections = {};        // section name -> {grid, details}
  function plot(chart, div) {
    Plotly.react(div, traces(chart), layout(chart), {displaylogo: false, responsive: true,
                                                     toImageButtonOptions: {format: "png", filename: chart.id}});
  }
  function drawCharts() {
    var root = document.getElementById("charts");
    MODEL.charts.forEach(function (chart) {
      var sec = sections[chart.section];
      if (!sec) {
        var open = chart.section !== "Other metrics";  // folded: its charts are drawn when it is opened
        var grid = h("div", {cls: "grid"});
        var details = h("details", open ? {open: "", cls: "section"} : {cls: "section"},
                        [h("summary", {text: chart.section}), grid]);
        details.addEventListener("toggle", function () { if (details.open) drawSection(details); });
        root.appendChild(details);
        sec = sections[chart.section] = {grid: grid, details: details};
      }
      var div = document.getElementById("chart-" + chart.id);
      if (!div) {
        div = h("div", {id: "chart-" + chart.id, cls: "chart", "data-title": chart.title});
        sec.grid.appendChild(h("figure", {}, [div, chart.note ? h("figcaption", {text: chart.note}) : null]));
      }
      if (sec.details.open) plot(chart, div);
    });
  }
  function drawSection(details) {
    MODEL.charts.forEach(function (chart) {
      if (sections[chart.section].details === details) plot(chart, document.getElementById("chart-" + chart.id));
    });
  }

  // -- completion browser ------------------------------------------------------------------------------
  function loadChunk(ri, step, done) {
    var key = ri + "-" + step;
    if (CHUNKS[key]) return done(CHUNKS[key]);
    if (MODEL.live) {
      fetch("api/completions?run=" + ri + "&step=" + step).then(function (r) { return r.json(); })
        .then(function (chunk) { Object.assign(IMAGES, chunk.images || {}); CHUNKS[key] = chunk; done(chunk); })
        .catch(function (e) { setStatus("cannot load step " + step + ": " + e); });
      return;
    }
    CHUNKS[key] = readJSON("c-" + key) || {groups: []};
    done(CHUNKS[key]);
  }
  function setStatus(text) { document.getElementById("cb-status").textContent = text; }
  function option(value, label, selected) {
    var o = h("option", {value: String(value), text: label});
    if (selected) o.selected = true;
    return o;
  }
  function fillSelect(sel, options) {
    sel.textContent = "";
    options.forEach(function (o) { sel.appendChild(o); });
  }
  function buildControls() {
    var run = MODEL.runs[state.run];
    var runSel = document.getElementById("cb-run");
    fillSelect(runSel, MODEL.runs.map(function (r, i) {
      return option(i, r.name + " (" + r.completions + " completions)", i === state.run);
    }));
    var steps = run ? run.completion_steps : [];
    if (state.step === null || steps.indexOf(state.step) < 0) state.step = steps.length ? steps[steps.length - 1] : null;
    fillSelect(document.getElementById("cb-step"), steps.map(function (s) { return option(s, "step " + s, s === state.step); }));
    var rewards = run ? run.completion_rewards : [];
    fillSelect(document.getElementById("cb-filter-reward"), [option("", "(no reward filter)", !state.fr)].concat(
      rewards.map(function (r) { return option(r, r, r === state.fr); })));
    fillSelect(document.getElementById("cb-sort"), [option("", "logged order", !state.sort)].concat(
      rewards.map(function (r) { return option("r:" + r, r, state.sort === "r:" + r); }),
      [option("adv", "advantage", state.sort === "adv"), option("len", "length", state.sort === "len")]));
    document.getElementById("cb-dir").value = state.dir;
    document.getElementById("cb-search").value = state.q;
    document.getElementById("cb-min").value = state.min;
    document.getElementById("cb-max").value = state.max;
  }
  function sortValue(item, rewards) {
    if (state.sort === "adv") return item.adv;
    if (state.sort === "len") return item.text.length;
    if (state.sort.slice(0, 2) === "r:") return item.s[rewards.indexOf(state.sort.slice(2))];
    return null;
  }
  function visible(item, group, rewards) {
    if (state.fr) {
      var v = item.s[rewards.indexOf(state.fr)];
      if (v === null || v === undefined) return false;
      if (state.min !== "" && v < parseFloat(state.min)) return false;
      if (state.max !== "" && v > parseFloat(state.max)) return false;
    }
    if (state.q) {
      var q = state.q.toLowerCase();
      var turns = (item.turns || []).map(function (t) { return t.text + "\n" + t.calls.join("\n"); }).join("\n");
      if (item.text.toLowerCase().indexOf(q) < 0 && group.prompt.toLowerCase().indexOf(q) < 0 &&
          String(group.gold).toLowerCase().indexOf(q) < 0 && turns.toLowerCase().indexOf(q) < 0) return false;
    }
    return true;
  }
  function renderBrowser() {
    var out = document.getElementById("cb-groups");
    out.textContent = "";
    var run = MODEL.runs[state.run];
    if (!run || state.step === null) { setStatus("this run logged no completions (train with --log_completions true)"); return; }
    var rewards = run.completion_rewards;
    loadChunk(state.run, state.step, function (chunk) {
      var total = 0, shown = 0, groupsShown = 0, budget = state.shown;
      var dir = state.dir === "asc" ? 1 : -1;
      var groups = chunk.groups.map(function (g, gi) {
        total += g.items.length;
        var items = g.items.filter(function (it) { return visible(it, g, rewards); });
        if (state.sort) items.sort(function (a, b) {
          var x = sortValue(a, rewards), y = sortValue(b, rewards);
          if (x === null || x === undefined) return 1;
          if (y === null || y === undefined) return -1;
          return dir * (x - y);
        });
        var best = items.length && state.sort ? sortValue(items[0], rewards) : null;
        return {g: g, gi: gi, items: items, best: best};
      }).filter(function (x) { return x.items.length; });
      if (state.sort) groups.sort(function (a, b) {
        if (a.best === null || a.best === undefined) return 1;
        if (b.best === null || b.best === undefined) return -1;
        return dir * (a.best - b.best);
      });
      groups.forEach(function (x) {
        if (budget <= 0) return;
        var items = x.items.slice(0, budget);
        budget -= items.length;
        shown += items.length;
        groupsShown += 1;
        out.appendChild(renderGroup(x.g, x.gi, items, rewards));
      });
      var matching = groups.reduce(function (n, x) { return n + x.items.length; }, 0);
      setStatus("step " + state.step + ": showing " + shown + " of " + matching + " matching completions (" +
                total + " logged) in " + groupsShown + " prompt group(s)");
      var more = document.getElementById("cb-more");
      more.hidden = shown >= matching;
      out.setAttribute("data-step", String(state.step));
      out.setAttribute("data-shown", String(shown));
      out.setAttribute("data-matching", String(matching));
      selfCheck();
    });
  }
  function renderGroup(g, gi, items, rewards) {
    var head = h("div", {cls: "group-head"}, [
      h("div", {cls: "prompt", text: g.prompt}),
      h("div", {cls: "gold"}, [h("b", {text: "gold: "}), h("span", {cls: "gold-text", text: g.gold === "" ? "–" : g.gold})])]);
    if (g.images && g.images.length) {
      var thumbs = h("div", {cls: "thumbs"});
      if (g.images.length > 1) thumbs.appendChild(h("span", {cls: "note", text: "the prompt text matches " +
        g.images.length + " dataset rows with different images: "}));
      g.images.forEach(function (ids, ci) {
        ids.forEach(function (id, ii) {
          var path = (g.paths && g.paths[ci] && g.paths[ci][ii]) || "";
          if (id && IMAGES[id]) thumbs.appendChild(h("img", {cls: "thumb", src: IMAGES[id], title: path, alt: path}));
          else thumbs.appendChild(h("span", {cls: "note", text: "image not readable: " + path}));
        });
      });
      head.appendChild(thumbs);
    }
    var headRow = h("tr", {}, [h("th", {text: "#"}), h("th", {text: "completion"})].concat(
      rewards.map(function (r) {
        return h("th", {text: r, cls: "sortable", title: "sort by " + r, onclick: function () { toggleSort("r:" + r); }});
      }), [h("th", {text: "advantage", cls: "sortable", onclick: function () { toggleSort("adv"); }})]));
    var body = h("tbody");
    items.forEach(function (it) {
      if (it.turns && it.turns.length) body.appendChild(renderTurns(it, rewards.length + 3));
      body.appendChild(h("tr", {cls: "completion", "data-n": String(it.n)}, [
        h("td", {cls: "n", text: String(it.n)}), h("td", {cls: "text", text: it.text})].concat(
        rewards.map(function (r, i) {
          return h("td", {cls: "score", "data-reward": r, "data-value": it.s[i] === null ? "" : String(it.s[i]),
                          text: fmt(it.s[i])});
        }), [h("td", {cls: "adv", text: fmt(it.adv)})])));
    });
    return h("div", {cls: "group", "data-group": String(gi), "data-step": String(state.step)},
             [head, h("table", {}, [h("thead", {}, [headRow]), body])]);
  }
  // a multi-turn completion: the turns before its final answer (tool calls, tool results, zoom crops), as text
  function renderTurns(it, span) {
    var turns = it.turns.map(function (t, ti) {
      var label = t.role + (t.calls.length ? " · " + t.calls.length + " call" + (t.calls.length > 1 ? "s" : "") : "");
      var parts = [h("span", {cls: "role", text: label}), h("div", {cls: "turn-text", text: t.text})];
      t.calls.forEach(function (c) { parts.push(h("div", {cls: "call", text: c})); });
      t.img.forEach(function (id, ii) {
        var path = t.paths[ii] || "";
        if (id && IMAGES[id]) parts.push(h("img", {cls: "crop", src: IMAGES[id], title: path, alt: path}));
        else parts.push(h("span", {cls: "note", text: path ? "image not readable: " + path : "image (not in the log)"}));
      });
      return h("div", {cls: "turn turn-" + (t.role === "tool" ? "tool" : t.role === "assistant" ? "assistant" : "other"),
                       "data-role": t.role, "data-turn": String(ti)}, parts);
    });
    return h("tr", {cls: "turns", "data-n": String(it.n)}, [h("td", {colspan: String(span)}, turns)]);
  }
  function toggleSort(key) {
    if (state.sort === key) state.dir = state.dir === "desc" ? "asc" : "desc";
    else { state.sort = key; state.dir = "desc"; }
    update();
  }

  // -- state in the URL (#step=3&fr=think_format&min=1): shareable links, and how tests drive the page --
  function readHash() {
    var params = new URLSearchParams(location.hash.slice(1));
    if (params.has("run")) state.run = Math.max(0, Math.min(MODEL.runs.length - 1, parseInt(params.get("run"), 10) || 0));
    if (params.has("step")) state.step = parseInt(params.get("step"), 10);
    ["q", "fr", "min", "max", "sort", "dir"].forEach(function (k) { if (params.has(k)) state[k] = params.get(k); });
  }
  function writeHash() {
    var params = new URLSearchParams();
    ["run", "step", "q", "fr", "min", "max", "sort"].forEach(function (k) {
      if (state[k] !== "" && state[k] !== null) params.set(k, String(state[k]));
    });
    if (state.sort) params.set("dir", state.dir);
    history.replaceState(null, "", "#" + params.toString());
  }
  function update() { state.shown = PAGE; buildControls(); writeHash(); renderBrowser(); }
  function wireControls() {
    function on(id, ev, fn) { document.getElementById(id).addEventListener(ev, fn); }
    on("cb-run", "change", function (e) { state.run = parseInt(e.target.value, 10); state.step = null; state.fr = ""; state.sort = ""; update(); });
    on("cb-step", "change", function (e) { state.step = parseInt(e.target.value, 10); update(); });
    on("cb-prev", "click", function () { moveStep(-1); });
    on("cb-next", "click", function () { moveStep(1); });
    on("cb-search", "input", function (e) { state.q = e.target.value; update(); });
    on("cb-filter-reward", "change", function (e) { state.fr = e.target.value; update(); });
    on("cb-min", "input", function (e) { state.min = e.target.value; update(); });
    on("cb-max", "input", function (e) { state.max = e.target.value; update(); });
    on("cb-sort", "change", function (e) { state.sort = e.target.value; update(); });
    on("cb-dir", "change", function (e) { state.dir = e.target.value; update(); });
    on("cb-more", "click", function () { state.shown += PAGE; renderBrowser(); });
  }
  function moveStep(delta) {
    var steps = MODEL.runs[state.run].completion_steps, i = steps.indexOf(state.step) + delta;
    if (i >= 0 && i < steps.length) { state.step = steps[i]; update(); }
  }

  // -- page ---------------------------------------------------------------------------------------------
  function header() {
    document.title = MODEL.title;
    document.getElementById("title").textContent = MODEL.title;
    var list = document.getElementById("runs");
    list.textContent = "";
    MODEL.runs.forEach(function (run) {
      var bits = [run.steps + " logged steps" + (run.max_steps ? " of " + run.max_steps : ""),
                  run.completions + " completions"];
      Object.keys(run.summary).forEach(function (k) { bits.push(k + "=" + JSON.stringify(run.summary[k])); });
      list.appendChild(h("li", {}, [h("b", {text: run.name}), h("span", {text: " " + run.path}),
                                   h("div", {cls: "note", text: bits.join(" · ")})]));
    });
    document.getElementById("generated").textContent = (MODEL.live ? "live, refreshed " : "generated ") + MODEL.generated;
  }
  function selfCheck() {
    var el = document.getElementById("selfcheck");
    el.textContent = JSON.stringify({errors: window.__reportErrors, charts: rendered,
                                     browser: {run: state.run, step: state.step},
                                     charts_ms: chartsMs, ready_ms: Math.round(performance.now())});
    document.body.setAttribute("data-ready", "1");
  }
  function poll() {
    fetch("api/model?since=" + encodeURIComponent(MODEL.version || "")).then(function (r) {
      return r.status === 204 ? null : r.json();
    }).then(function (model) {
      if (!model || model.version === MODEL.version) return;
      var stepsBefore = JSON.stringify(MODEL.runs.map(function (r) { return r.completion_steps; }));
      MODEL = model;
      header();
      drawCharts();
      if (JSON.stringify(MODEL.runs.map(function (r) { return r.completion_steps; })) !== stepsBefore) buildControls();
    }).catch(function () { document.getElementById("generated").textContent = "live: server not reachable"; });
  }
  function skeleton() {
    var body = document.body;
    body.insertBefore(h("main", {}, [
      h("header", {}, [h("h1", {id: "title"}), h("div", {id: "generated", cls: "note"}), h("ul", {id: "runs"})]),
      h("section", {id: "charts"}),
      h("section", {id: "browser"}, [
        h("h2", {text: "Completions"}),
        h("div", {cls: "controls"}, [
          h("label", {text: "run "}, [h("select", {id: "cb-run"})]),
          h("button", {id: "cb-prev", text: "◀", title: "previous step"}),
          h("select", {id: "cb-step"}),
          h("button", {id: "cb-next", text: "▶", title: "next step"}),
          h("input", {id: "cb-search", type: "search", placeholder: "search completions, prompts, gold"}),
          h("label", {text: "filter "}, [h("select", {id: "cb-filter-reward"})]),
          h("input", {id: "cb-min", type: "number", step: "any", placeholder: "min", size: "5"}),
          h("input", {id: "cb-max", type: "number", step: "any", placeholder: "max", size: "5"}),
          h("label", {text: "sort "}, [h("select", {id: "cb-sort"})]),
          h("select", {id: "cb-dir"}, [option("desc", "high first"), option("asc", "low first")])]),
        h("div", {id: "cb-status", cls: "note"}),
        h("div", {id: "cb-groups"}),
        h("button", {id: "cb-more", text: "show more", hidden: ""})]),
      h("pre", {id: "selfcheck", hidden: ""})]), body.firstChild);
  }
  var chartsMs = null;
  function startCharts() {
    skeleton();
    header();
    try { drawCharts(); } catch (e) { window.__reportErrors.push("charts: " + e); }
    chartsMs = Math.round(performance.now());
  }
  function startBrowser() {
    readHash();
    wireControls();
    buildControls();
    renderBrowser();
    if (MODEL.live) setInterval(poll, 5000);
  }
  // this script runs before the completion blocks are read: charts now, the browser once the file is read
  startCharts();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startBrowser);
  else startBrowser();
})();
