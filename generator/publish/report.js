/* ragloom report page. Reads the run's data from the JSON block and builds the DOM.
   Data only ever reaches the page through textContent / setAttribute, never as markup.
   Record shapes: see generator/report_data.py. Filters live in the URL hash, e.g.
   #paradigm=single_doc_answer&q=tower&page=2 (also reason=, issue=, source=). */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("ragloom-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2d5bd7", "#1a7f4b", "#c2410c", "#7c3aed", "#0e7490", "#b42318", "#a16207", "#475569"];
  var PER_PAGE = 20;

  function el(tag, props, kids) {
    var e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (props[k] == null) return;
      if (k === "class") e.className = props[k];
      else if (k === "text") e.textContent = props[k];
      else e.setAttribute(k, props[k]);
    });
    add(e, kids);
    return e;
  }
  function add(e, kids) {
    if (kids == null) return e;
    (Array.isArray(kids) ? kids : [kids]).forEach(function (k) {
      if (k != null) e.appendChild(typeof k === "object" ? k : document.createTextNode(String(k)));
    });
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }
  function fmt(n) {
    if (n == null) return "not recorded";
    if (typeof n === "number") return n.toLocaleString("en-US", { maximumFractionDigits: 4 });
    return String(n);
  }
  function sum(xs) { return xs.reduce(function (a, b) { return a + b; }, 0); }
  function byId(id) { return document.getElementById(id); }
  function stat(label, value, id) { return el("div", { class: "stat", id: id || null }, [el("b", { text: fmt(value) }), el("span", { text: label })]); }
  function table(head, rows, attrs) {
    var t = el("table", attrs || {});
    t.appendChild(el("tr", {}, head.map(function (h) { return el("th", { text: h }); })));
    rows.forEach(function (r) { t.appendChild(r.nodeType ? r : el("tr", {}, r.map(function (c) { return el("td", { text: fmt(c) }); }))); });
    return t;
  }
  function counts(title, obj, note, key) {
    var keys = Object.keys(obj || {});
    var box = el("div", {}, el("h3", { text: title }));
    if (obj == null) return add(box, el("p", { class: "note", text: note || "not recorded in run.json" }));
    if (!keys.length) return add(box, el("p", { class: "note", text: "none" }));
    return add(box, table([key || "reason", "count"], keys.map(function (k) { return [k, obj[k]]; }), { "data-table": title }));
  }
  function color(i) { return PALETTE[i % PALETTE.length]; }
  function legend(series) {
    var p = el("div", { class: "legend" });
    series.forEach(function (s, i) { var sw = el("i"); sw.style.background = s.color || color(i); add(p, [sw, s.name]); });
    return p;
  }
  function pcolor(p) {  /* one colour per paradigm, in the overview table's order */
    var names = (D.per_paradigm || []).map(function (r) { return r.paradigm; });
    return color(Math.max(0, names.indexOf(p)));
  }

  /* ------------------------------------------------------------- figures (inline SVG) */
  function barChart(o) {
    var W = o.width || 460, H = 200, L = 44, B = 34, T = 8, n = o.cats.length;
    var tot = o.cats.map(function (_, i) { return o.stacked ? sum(o.series.map(function (s) { return s.values[i]; })) : Math.max.apply(null, o.series.map(function (s) { return s.values[i]; })); });
    var max = Math.max.apply(null, tot.concat([o.max || 1]));
    var svg = sv("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    var bw = (W - L - 6) / Math.max(n, 1);
    [0, 0.5, 1].forEach(function (f) {
      var y = T + (H - T - B) * (1 - f);
      svg.appendChild(sv("line", { x1: L, x2: W - 4, y1: y, y2: y, stroke: "#e3e7ec" }));
      svg.appendChild(sv("text", { x: L - 4, y: y + 4, "text-anchor": "end" }, fmt(Math.round(max * f * 100) / 100)));
    });
    var every = Math.ceil(n / 12);
    o.cats.forEach(function (c, i) {
      var base = H - B, x = L + i * bw;
      o.series.forEach(function (s, j) {
        var v = s.values[i] || 0, h = (H - T - B) * v / max;
        var w = o.stacked ? bw * 0.8 : bw * 0.8 / o.series.length;
        var xx = o.stacked ? x + bw * 0.1 : x + bw * 0.1 + j * w;
        var r = sv("rect", { x: xx, y: o.stacked ? base - h : H - B - h, width: Math.max(w, 1), height: h, fill: s.color || color(j) });
        r.appendChild(sv("title", {}, s.name + " · " + c + ": " + fmt(v)));
        svg.appendChild(r);
        if (o.stacked) base -= h;
      });
      if (i % every === 0) svg.appendChild(sv("text", { x: x + bw / 2, y: H - B + 13, "text-anchor": "middle" }, c));
    });
    if (o.xlabel) svg.appendChild(sv("text", { x: L + (W - L) / 2, y: H - 4, "text-anchor": "middle" }, o.xlabel));
    return figure(o.title, [svg, o.series.length > 1 ? legend(o.series) : null, o.note ? el("div", { class: "note", text: o.note }) : null], o.id);
  }
  function boxChart(o) {
    var rows = o.rows.filter(function (r) { return r.q; });
    var W = o.width || 460, L = 150, R = 12, rowH = 24, H = rows.length * rowH + 28;
    var max = Math.max.apply(null, rows.map(function (r) { return r.q[4]; }).concat([0]));
    var min = Math.min.apply(null, rows.map(function (r) { return r.q[0]; }).concat([0]));
    if (max <= min) max = min + 1;
    var sx = function (v) { return L + (W - L - R) * (v - min) / (max - min); };
    var tick = function (v) { return Math.abs(max - min) >= 10 ? Math.round(v) : Math.round(v * 100) / 100; };
    var svg = sv("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    rows.forEach(function (r, i) {
      var y = 6 + i * rowH, q = r.q, c = r.color || color(i);
      svg.appendChild(sv("text", { x: L - 6, y: y + 12, "text-anchor": "end" }, r.label));
      svg.appendChild(sv("line", { x1: sx(q[0]), x2: sx(q[4]), y1: y + 8, y2: y + 8, stroke: c }));
      var b = sv("rect", { x: sx(q[1]), y: y + 1, width: Math.max(sx(q[3]) - sx(q[1]), 1), height: 14, fill: c, "fill-opacity": 0.25, stroke: c });
      b.appendChild(sv("title", {}, r.label + ": min " + q[0] + ", quartiles " + q[1] + " / " + q[2] + " / " + q[3] + ", max " + q[4]));
      svg.appendChild(b);
      svg.appendChild(sv("line", { x1: sx(q[2]), x2: sx(q[2]), y1: y + 1, y2: y + 15, stroke: c, "stroke-width": 2 }));
    });
    [0, 0.5, 1].forEach(function (f) {
      var v = min + (max - min) * f;
      svg.appendChild(sv("text", { x: sx(v), y: H - 6, "text-anchor": "middle" }, fmt(tick(v))));
    });
    return figure(o.title, [svg, el("div", { class: "note", text: o.note || "box: quartiles, bar: median, whiskers: min to max" })], o.id);
  }
  function figure(title, kids, id) { return el("figure", { id: id || null }, [el("figcaption", { text: title })].concat(kids)); }

  /* ------------------------------------------------------------- generate runs */
  var GEN = {
    overview: function (box) {
      var rows = D.per_paradigm, st = D.stats || {};
      var rejected = st.rejected ? sum(Object.values(st.rejected)) : sum(rows.map(function (r) { return r.rejected; }));
      var u = D.usage;
      add(box, el("div", { class: "cards" }, [
        stat("planned", D.planned, "stat-planned"), stat("accepted", D.accepted, "stat-accepted"), stat("failed", D.failed, "stat-failed"),
        stat("rejected attempts (asked again or failed)", rejected, "stat-rejected"),
        stat("transport retries", st.retried ? sum(Object.values(st.retried)) : null, "stat-retried"),
        stat("prompt tokens" + (u.recorded ? "" : " (accepted replies)"), u.prompt_tokens, "stat-prompt-tokens"),
        stat("completion tokens" + (u.recorded ? "" : " (accepted replies)"), u.completion_tokens, "stat-completion-tokens"),
        stat("cost estimate" + (D.pricing ? "" : " (no pricing)"), u.cost == null ? null : "$" + u.cost.toFixed(4), "stat-cost")]));
      var cols = ["planned", "accepted", "failed", "retried", "rejected"];
      var trs = rows.map(function (r) {
        return el("tr", { "data-paradigm": r.paradigm }, [el("td", { text: r.paradigm })].concat(cols.map(function (c) {
          return el("td", { "data-col": c, text: fmt(r[c]) });
        })));
      });
      trs.push(el("tr", { class: "total" }, [el("td", { text: "total" })].concat(cols.map(function (c) {
        var v = rows.every(function (r) { return r[c] != null; }) ? sum(rows.map(function (r) { return r[c]; })) : null;
        return el("td", { "data-col": c, text: fmt(v) });
      }))));
      add(box, [el("h3", { text: "Per paradigm" }),
        table(["paradigm", "planned", "accepted", "failed", "jobs retried", "rejected attempts"], trs, { id: "per-paradigm" }),
        el("p", { class: "note", id: "paradigm-note", text: "jobs retried: accepted after more than one attempt; rejected attempts: replies validation turned down (accepted jobs' earlier attempts plus every attempt of a failed job)." +
          (D.skipped_records ? " " + D.skipped_records + " records of an unexpected shape were skipped." : "") })]);
      add(box, el("div", { class: "grid" }, [
        el("div", {}, counts("Failed after all attempts", D.failure_reasons)),
        el("div", {}, counts("Rejected (asked again)", st.rejected, "not recorded in run.json (older run): failed.jsonl keeps only each failed job's last reason")),
        el("div", {}, counts("Transport retries", st.retried)),
        el("div", {}, counts("Distractor rules", st.distractor_rules || D.distractor_rules, null, "rule")),
        D.citations && Object.keys(D.citations).length ? el("div", {}, counts("Citations per paradigm", D.citations, null, "paradigm")) : null,
        D.exemplars_dropped && Object.keys(D.exemplars_dropped).length ? el("div", {}, counts("Exemplars dropped", D.exemplars_dropped, null, "why")) : null]));
      if (!u.recorded) add(box, el("p", { class: "note", text: "Token totals of the whole run are not recorded in run.json; shown: the accepted records' last attempts." }));
      var cv = D.coverage;
      if (cv) {
        add(box, [el("h3", { text: "Coverage of the corpus (source passages)" }), el("div", { class: "cards", id: "coverage" }, [
          stat("distinct source passages", cv.distinct_sources, "stat-distinct-sources"),
          stat("share of the corpus", cv.corpus_share == null ? null : (cv.corpus_share * 100).toFixed(2) + "%", "stat-corpus-share"),
          stat("max reuse per passage", cv.max_reuse, "stat-max-reuse"),
          stat("mean reuse per passage", cv.mean_reuse, "stat-mean-reuse"),
          stat("source slots", cv.source_slots, "stat-source-slots"),
          stat("slots planned past max_reuse", cv.planned ? cv.planned.source_reuse_exceeded : 0, "stat-reuse-exceeded")])]);
      }
    },
    figures: function (box) {
      var f = D.figures, names = D.per_paradigm.map(function (r) { return r.paradigm; }).filter(function (p) { return f.lengths[p]; });
      var grid = el("div", { class: "grid" });
      grid.appendChild(boxChart({ id: "fig-question-length", title: "Question length (words) per paradigm", rows: names.map(function (p) { return { label: p, q: f.lengths[p].question, color: pcolor(p) }; }) }));
      grid.appendChild(boxChart({ id: "fig-answer-length", title: "Answer length (words) per paradigm", rows: names.map(function (p) { return { label: p, q: f.lengths[p].answer, color: pcolor(p) }; }) }));
      var r = f.ranks;
      if (r.edges) {
        grid.appendChild(barChart({ id: "fig-distractor-ranks", title: "Distractor retrieval rank, by rule", stacked: true, xlabel: "rank (bin width " + r.width + ")",
          cats: r.edges.map(String), series: Object.keys(r.by_rule).map(function (k) { return { name: k, values: r.by_rule[k] }; }),
          note: r.unranked ? r.unranked + " distractors have no rank (drawn at random)" : null }));
      }
      var slotNames = names.filter(function (p) { return f.slots[p]; });
      if (slotNames.length) {
        var n = f.slots[slotNames[0]].length, cats = [];
        for (var i = 1; i <= n; i++) cats.push(String(i));
        grid.appendChild(barChart({ id: "fig-source-slots", title: "Source documents by slot in the final order", stacked: true, xlabel: "document slot",
          cats: cats, series: slotNames.map(function (p) { return { name: p, values: f.slots[p], color: pcolor(p) }; }) }));
      }
      var hist = D.coverage ? D.coverage.reuse_histogram : {};
      var ks = Object.keys(hist || {});
      if (ks.length) {
        grid.appendChild(barChart({ id: "fig-source-reuse", title: "Source reuse: passages by the number of records they are a source of", xlabel: "records per passage",
          cats: ks, series: [{ name: "passages", values: ks.map(function (k) { return hist[k]; }) }] }));
      }
      if (f.quality) {
        var qp = names.filter(function (p) { return f.quality[p]; });
        grid.appendChild(barChart({ id: "fig-quality", title: "Quality check: share passed per paradigm", cats: qp, max: 1,
          series: [{ name: "passed", values: qp.map(function (p) { return f.quality[p].passed / f.quality[p].n; }) }] }));
        var keys = [];
        qp.forEach(function (p) { Object.keys(f.quality[p].scores).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
        if (keys.length) {
          grid.appendChild(barChart({ id: "fig-quality-scores", title: "Quality scores: mean per paradigm", cats: qp, width: 520,
            series: keys.map(function (k) { return { name: k, values: qp.map(function (p) { var v = f.quality[p].scores[k]; return v == null ? 0 : v; }) }; }) }));
        }
        add(grid, el("div", {}, [el("h3", { text: "Quality verdicts" }), table(["paradigm", "checked", "passed", "found"], qp.map(function (p) {
          var q = f.quality[p];
          return [p, q.n, q.passed, Object.keys(q.found).map(function (k) { return k + " " + q.found[k]; }).join(", ") || "-"];
        }))]));
      } else {
        add(grid, el("p", { class: "note", text: "No quality-check scores in these records." }));
      }
      box.appendChild(grid);
    },
    controls: function (c, s) {
      var ps = D.per_paradigm.map(function (r) { return r.paradigm; });
      var issues = {};
      D.records.forEach(function (r) { r[9].forEach(function (i) { issues[i] = (issues[i] || 0) + 1; }); });
      add(c, [select("paradigm", "all paradigms", ps, s),
        select("reason", "accepted examples", ["(all failed jobs)"].concat(Object.keys(D.failure_reasons)), s, "failed: "),
        Object.keys(issues).length ? select("issue", "any quality", ["(any issue)"].concat(Object.keys(issues)), s, "issue: ") : null]);
    },
    list: function (s) {
      if (s.reason) {
        var fj = D.failed_jobs.filter(function (f) {
          return (s.reason === "(all failed jobs)" || f[2] === s.reason) && (!s.paradigm || f[1] === s.paradigm) && (!s.q || String(f[0]).toLowerCase().indexOf(s.q) >= 0);
        });
        return { items: fj, noun: "failed jobs", draw: drawFailure };
      }
      var lc = s.q && searchText(function (r) { return r[2] + "\n" + r[3]; });
      var items = D.records.filter(function (r, i) {
        return (!s.paradigm || r[1] === s.paradigm) && (!s.issue || (s.issue === "(any issue)" ? r[9].length > 0 : r[9].indexOf(s.issue) >= 0)) && (!s.q || lc[i].indexOf(s.q) >= 0);
      });
      return { items: items, noun: "examples", draw: drawExample };
    }
  };
  function drawFailure(f) {
    return el("div", { class: "failure", "data-paradigm": f[1] }, [el("span", { class: "tag bad", text: f[2] }), " job ", f[0], " · ", f[1], " · ", fmt(f[3]) + " attempts"]);
  }
  function drawExample(r) {
    var head = el("div", { class: "head" }, [el("b", { text: r[0] }), el("span", { class: "tag", text: r[1] })]);
    if (r[6] > 1) add(head, el("span", { class: "tag", text: r[6] + " attempts" }));
    r[9].forEach(function (i) { add(head, el("span", { class: "tag bad issue", text: i })); });
    var docs = el("ol", { class: "docs" }, r[4].map(function (d, i) {
      var p = D.passages[d[0]], src = d[1] === 1;
      var meta = "[" + (i + 1) + "] " + (src ? "SOURCE" : "distractor") + " · rank " + (d[2] < 0 ? "-" : d[2]) + (d[3] >= 0 ? " · " + D.rules[d[3]] : "");
      var body = el("div", { class: "body", title: "click to expand" }, [el("span", { class: "meta", text: meta }), el("b", { text: p[1] }), " ", p[2]]);
      body.addEventListener("click", function () { body.classList.toggle("open"); });
      return el("li", { class: src ? "source" : "distractor", "data-role": src ? "source" : "distractor" }, body);
    }));
    var card = el("article", { class: "example", "data-paradigm": r[1], "data-id": r[0] }, [head,
      el("div", { class: "qa" }, [el("span", { class: "label", text: "Q" }), el("span", { class: "text instruction", text: r[2] })]),
      el("div", { class: "qa" }, [el("span", { class: "label", text: "A" }), el("span", { class: "text answer", text: r[3] })]), docs]);
    if (r[5] >= 0) {
      var e = D.exemplars[r[5]];
      add(card, el("div", { class: "exemplar" }, ["imitates exemplar ", el("b", { text: e[1] + " / " + e[0] }), e[3] ? " (" + e[3] + ")" : "", ": ", e[2],
        e[4] && e[4].length ? " [options: " + e[4].join(" | ") + "]" : ""]));
    }
    if (r[7]) add(card, el("div", { class: "quality", text: "quality: " + JSON.stringify(r[7]) }));
    if (r[8]) add(card, el("div", { class: "quality", text: "curation: " + JSON.stringify(r[8]) }));
    return card;
  }

  /* ------------------------------------------------------------- RA-DIT lm-ft */
  var LMFT = {
    overview: function (box) {
      add(box, el("div", { class: "cards" }, [stat("source pairs", D.pairs, "stat-pairs"), stat("prompt/completion examples", D.examples, "stat-examples"), stat("failed", D.failed, "stat-failed")]));
      add(box, el("div", { class: "grid" }, [el("div", {}, counts("Examples per kind", D.per_kind, null, "kind")), el("div", {}, counts("Pairs per source dataset", D.sources, null, "source")),
        el("div", {}, counts("Failures", D.failure_reasons))]));
    },
    figures: function (box) {
      var f = D.figures, grid = el("div", { class: "grid" });
      grid.appendChild(boxChart({ id: "fig-lengths", title: "Length (words)", rows: [{ label: "prompt", q: f.lengths.prompt }, { label: "completion", q: f.lengths.completion }] }));
      var ranks = Object.keys(f.score_by_rank);
      if (ranks.length) grid.appendChild(boxChart({ id: "fig-score-rank", title: "Retriever score by chunk rank", rows: ranks.map(function (k) { return { label: "rank " + k, q: f.score_by_rank[k] }; }) }));
      box.appendChild(grid);
    },
    controls: function (c, s) { add(c, select("source", "all sources", Object.keys(D.sources), s)); },
    list: function (s) {
      var lc = s.q && searchText(function (p) { return p[0] + "\n" + p[2] + "\n" + p[3].map(function (x) { return x[1]; }).join("\n"); });
      return { noun: "source pairs", draw: drawPair, items: D.records.filter(function (p, i) { return (!s.source || String(p[1]) === s.source) && (!s.q || lc[i].indexOf(s.q) >= 0); }) };
    }
  };
  function drawPair(p) {
    var card = el("article", { class: "example pair", "data-id": p[0] }, [el("div", { class: "head" }, [el("b", { text: p[0] }), el("span", { class: "tag", text: String(p[1]) }), p[3].length + " prompts"]),
      el("div", { class: "qa" }, [el("span", { class: "label", text: "completion" }), el("span", { class: "text answer", text: p[2] })])]);
    p[3].forEach(function (x) {
      var meta = x[0] + (x[2] != null ? " · " + x[2] + " · rank " + x[3] + " · score " + fmt(x[4]) : "");
      add(card, [el("div", { class: "note", text: meta }), el("div", { class: "prompt", text: x[1] })]);
    });
    return card;
  }

  /* ------------------------------------------------------------- RA-DIT lsr */
  var LSR = {
    overview: function (box) {
      add(box, el("div", { class: "cards" }, [stat("queries", D.queries, "stat-queries"), stat("chunks scored", D.chunks, "stat-chunks"), stat("failed", D.failed, "stat-failed"),
        stat("LM prefers the retriever's top chunk", D.lm_prefers_retriever_top1 == null ? null : Math.round(D.lm_prefers_retriever_top1 * 1000) / 10 + "%", "stat-agree")]));
      add(box, el("div", { class: "grid" }, [el("div", {}, counts("Queries per source", D.sources, null, "source")), el("div", {}, counts("Failures", D.failure_reasons))]));
    },
    figures: function (box) {
      var f = D.figures, grid = el("div", { class: "grid" }), pr = Object.keys(f.preferred_rank);
      if (pr.length) grid.appendChild(barChart({ id: "fig-preferred-rank", title: "Retriever rank of the chunk with the highest LSR score", cats: pr, xlabel: "retriever rank", series: [{ name: "queries", values: pr.map(function (k) { return f.preferred_rank[k]; }) }] }));
      if (f.top_lsr) grid.appendChild(barChart({ id: "fig-top-lsr", title: "Highest LSR score per query", cats: f.top_lsr.edges.map(function (e) { return (e / 100).toFixed(2); }), xlabel: "LSR score", series: [{ name: "queries", values: f.top_lsr.counts }] }));
      box.appendChild(grid);
    },
    controls: function (c, s) { add(c, select("source", "all sources", Object.keys(D.sources), s)); },
    list: function (s) {
      var lc = s.q && searchText(function (q) { return q[1] + "\n" + q[2].join("\n"); });
      return { noun: "queries", draw: drawQuery, items: D.records.filter(function (q, i) { return (!s.source || String(q[3]) === s.source) && (!s.q || lc[i].indexOf(s.q) >= 0); }) };
    }
  };
  function bar(v, frac, c, label) {
    var fill = el("i"); fill.style.width = Math.max(0, Math.min(1, frac)) * 100 + "%"; fill.style.background = c;
    return el("div", { class: "bar", title: label }, [fill, el("span", { text: fmt(v) })]);
  }
  function drawQuery(q) {
    var rs = q[4].map(function (c) { return c[2]; }), ls = q[4].map(function (c) { return c[3]; });
    var norm = function (xs, v) { var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs); return hi > lo ? (v - lo) / (hi - lo) : 1; };
    var card = el("article", { class: "example query", "data-id": q[0] }, [el("div", { class: "head" }, [el("b", { text: q[0] }), el("span", { class: "tag", text: String(q[3]) })]),
      el("div", { class: "qa" }, [el("span", { class: "label", text: "x" }), el("span", { class: "text instruction", text: q[1] })]),
      el("div", { class: "qa" }, [el("span", { class: "label", text: "y" }), el("span", { class: "text answer", text: q[2].join(" | ") })]),
      el("div", { class: "chunk note" }, ["rank", "chunk", "retriever score", "LM log-prob", "LSR score"].map(function (h) { return el("b", { text: h }); }))]);
    q[4].forEach(function (c) {
      var p = D.passages[c[0]];
      add(card, el("div", { class: "chunk", "data-rank": c[1] }, [el("span", { text: String(c[1]) }), el("span", { class: "title", title: p[2], text: (p[1] ? p[1] + ": " : "") + p[2] }),
        bar(c[2], norm(rs, c[2]), "#2d5bd7", "retriever score (bar: min to max within this query)"),
        bar(c[3], norm(ls, c[3]), "#c2410c", "LM log-prob of y over " + c[4] + " tokens (bar: min to max within this query)"),
        bar(c[5], c[5], "#1a7f4b", "LSR score (softmax over the query's chunks)")]));
    });
    return card;
  }

  /* ------------------------------------------------------------- browser, driven by the URL hash */
  var VIEW = D.kind === "generate" ? GEN : D.kind === "radit-lm-ft" ? LMFT : LSR;
  var KEYS = ["paradigm", "reason", "issue", "source", "q", "page"];
  var SEARCH = null;
  function searchText(fn) {
    if (!SEARCH) SEARCH = D.records.map(function (r) { return fn(r).toLowerCase(); });
    return SEARCH;
  }
  function state() {
    var h = new URLSearchParams(location.hash.replace(/^#/, "")), s = {};
    KEYS.forEach(function (k) { s[k] = h.get(k) || ""; });
    s.q = s.q.toLowerCase();
    s.page = Math.max(1, parseInt(s.page, 10) || 1);
    return s;
  }
  function go(change) {
    var s = state(), h = new URLSearchParams();
    if (!("page" in change)) change.page = 1;
    Object.keys(change).forEach(function (k) { s[k] = change[k]; });
    KEYS.forEach(function (k) { if (s[k] && !(k === "page" && s[k] === 1)) h.set(k, s[k]); });
    location.hash = h.toString();
  }
  function select(key, all, values, s, prefix) {
    var sel = el("select", { id: "filter-" + key, "aria-label": key }, el("option", { value: "", text: all }));
    values.forEach(function (v) { sel.appendChild(el("option", { value: v, text: (prefix || "") + v })); });
    sel.value = s[key];
    sel.addEventListener("change", function () { var c = {}; c[key] = sel.value; go(c); });
    return sel;
  }
  function route() {
    var s = state(), c = byId("controls");
    c.textContent = "";
    var search = el("input", { type: "search", id: "filter-q", placeholder: "search text", "aria-label": "search" });
    search.value = new URLSearchParams(location.hash.replace(/^#/, "")).get("q") || "";
    search.addEventListener("change", function () { go({ q: search.value }); });
    VIEW.controls(c, s);
    c.appendChild(search);
    var res = VIEW.list(s), pages = Math.max(1, Math.ceil(res.items.length / PER_PAGE)), page = Math.min(s.page, pages);
    var out = byId("results");
    out.textContent = "";
    out.appendChild(el("p", { id: "summary", "data-count": res.items.length, "data-noun": res.noun }, res.items.length.toLocaleString("en-US") + " " + res.noun + " match"));
    res.items.slice((page - 1) * PER_PAGE, page * PER_PAGE).forEach(function (it) { out.appendChild(res.draw(it)); });
    var pager = byId("pager");
    pager.textContent = "";
    var prev = el("button", { text: "previous" }), next = el("button", { text: "next" });
    prev.disabled = page <= 1; next.disabled = page >= pages;
    prev.addEventListener("click", function () { go({ page: page - 1 }); });
    next.addEventListener("click", function () { go({ page: page + 1 }); });
    add(pager, [prev, el("span", { id: "page", text: "page " + page + " of " + pages }), next]);
  }

  byId("subtitle").textContent = D.kind + " run" + (D.plan_hash ? " · plan " + D.plan_hash : "") + (D.started ? " · started " + D.started : "") +
    " · report written " + D.written + " by ragloom " + D.ragloom_version;
  var ov = byId("overview");
  VIEW.overview(ov);
  add(ov, el("details", { class: "config" }, [el("summary", { text: "Config (credentials removed)" }), el("pre", { class: "json", id: "config", text: JSON.stringify(D.config, null, 2) }),
    D.index ? el("pre", { class: "json", id: "index", text: "index: " + JSON.stringify(D.index, null, 2) }) : null]));
  VIEW.figures(byId("figures"));
  window.addEventListener("hashchange", route);
  route();
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
})();
