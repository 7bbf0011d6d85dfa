// lightspeed status page: draws the picture /events pushes (server-sent
// events, one JSON object per event).  Plain DOM and SVG, no libraries;
// every text from the server goes in with textContent, never as markup.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var W = 640, H = 400, R = 24;

  if (window.location.search.indexOf("token=") >= 0) {
    // The token is in a cookie now: keep it out of the address bar and history.
    window.history.replaceState(null, "", window.location.pathname);
  }

  function $(id) { return document.getElementById(id); }

  function svg(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function fmt(n) {
    if (n === null || n === undefined) { return "–"; }
    if (typeof n === "number" && !Number.isInteger(n)) { return n.toFixed(2); }
    return String(n);
  }

  // Kernels on a circle, in name order, the local one at the top.
  function layout(kernels, local) {
    var names = kernels.map(function (k) { return k.name; }).sort();
    var start = Math.max(0, names.indexOf(local));
    var at = {}, n = names.length, r = Math.min(W, H) / 2 - 2 * R - 10;
    names.forEach(function (name, i) {
      var a = -Math.PI / 2 + 2 * Math.PI * ((i - start + n) % n) / n;
      at[name] = n === 1 ? {x: W / 2, y: H / 2} : {x: W / 2 + r * Math.cos(a), y: H / 2 + r * Math.sin(a)};
    });
    return at;
  }

  function drawMesh(p) {
    var root = $("mesh");
    clear(root);
    var at = layout(p.kernels, p.kernel);
    var links = svg("g", {"class": "links"}, root);
    p.links.forEach(function (l) {
      var a = at[l.a], b = at[l.b];
      if (!a || !b) { return; }
      var busy = l.rate !== null && l.rate > 0;
      var g = svg("g", {"class": busy ? "link busy" : "link", "data-a": l.a, "data-b": l.b,
                        "data-cost": l.cost, "data-rate": l.rate === null ? "" : l.rate}, links);
      svg("line", {x1: a.x, y1: a.y, x2: b.x, y2: b.y}, g);
      var label = svg("text", {x: (a.x + b.x) / 2 + 4, y: (a.y + b.y) / 2 - 4}, g);
      label.textContent = "cost " + l.cost + (l.rate === null ? "" : " · " + fmt(l.rate) + "/s");
    });
    var nodes = svg("g", {"class": "kernels"}, root);
    p.kernels.forEach(function (k) {
      var c = at[k.name];
      var g = svg("g", {"class": k.local ? "kernel local" : "kernel", "data-kernel": k.name}, nodes);
      svg("circle", {cx: c.x, cy: c.y, r: R}, g);
      var t = svg("text", {x: c.x, y: c.y + R + 14, "text-anchor": "middle"}, g);
      var rate = p.rates[k.name];
      t.textContent = k.name + (rate === undefined ? "" : " (" + fmt(rate) + "/s)");
    });
    root.setAttribute("data-kernels", String(p.kernels.length));
    root.setAttribute("data-links", String(p.links.length));
    $("mesh-summary").textContent = p.kernels.length + " kernels, " + p.links.length + " links";
  }

  function rows(id, items, cells) {
    var body = $(id).tBodies[0];
    clear(body);
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      cells(item).forEach(function (value) {
        var td = document.createElement("td");
        td.textContent = fmt(value);
        if (typeof value === "number") { td.className = "num"; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function drawTables(p) {
    rows("links", p.connz, function (l) {
      return [l.peer, l.cost, l.rtt === null || l.rtt === undefined ? null : l.rtt * 1000, l.messages_in,
              l.messages_out, l.bytes_in, l.bytes_out, l.tls ? "yes" : "no", l.address];
    });
    var counters = [];
    Object.keys(p.varz).sort().forEach(function (k) {
      var v = p.varz[k];
      if (v !== null && typeof v === "object") {
        Object.keys(v).sort().forEach(function (sub) { counters.push([k + " " + sub, v[sub]]); });
      } else if (k !== "now") {
        counters.push([k, v]);
      }
    });
    rows("counters", counters, function (c) { return c; });
    $("session-count").textContent = p.sessions.count + " in all";
    rows("sessions", p.sessions.sessions, function (s) { return [s.id, s.aliases.join(", ")]; });
    $("undeliverable-count").textContent = p.undeliverable.total + " in all";
    rows("undeliverable", p.undeliverable.recent.slice().reverse(), function (u) {
      return [new Date(u.time * 1000).toLocaleTimeString(), u.destination, u.reason, u.origin];
    });
    rows("routes", Object.keys(p.routes).sort(), function (k) {
      return [k, p.routes[k].next_hop, p.routes[k].cost];
    });
  }

  function state(text) {
    var s = $("state");
    s.textContent = text;
    s.className = "state " + text;
  }

  function connect() {
    var source = new EventSource("events");
    source.onopen = function () { state("live"); };
    source.onerror = function () { state(source.readyState === 2 ? "down" : "connecting"); };
    source.onmessage = function (e) {
      var p = JSON.parse(e.data);
      $("kernel-name").textContent = p.kernel;
      document.title = "lightspeed " + p.kernel;
      drawMesh(p);
      drawTables(p);
      $("updated").textContent = "updated " + new Date(p.time * 1000).toLocaleTimeString();
      document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
    };
  }

  connect();
}());
