// Keeps the status page current without reloading it: fetch /api/status every few seconds
// and redraw the parts that changed. Every visible word comes from the embedded catalogue.
"use strict";
(function () {
  const L = JSON.parse(document.getElementById("labels").textContent);
  const lang = document.documentElement.lang || "vi";
  const locale = lang === "vi" ? "vi-VN" : "en-GB";
  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";

  function tr(key, values) {
    let text = L[key] || key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }
  function $(id) { return document.getElementById(id); }
  function setText(id, text) { const el = $(id); if (el && el.textContent !== text) el.textContent = text; }
  function badge(id, text, cls) { const el = $(id); if (!el) return; el.textContent = text; el.className = "badge " + (cls || ""); }
  function bytes(n) {
    if (n === null || n === undefined) return tr("page_unknown");
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0; let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toLocaleString(locale, { maximumFractionDigits: i ? 1 : 0 }) + " " + units[i];
  }
  function clockTime(iso) {
    return new Date(iso).toLocaleString(locale, { timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit", second: "2-digit", day: "2-digit", month: "2-digit" });
  }
  function mmss(seconds) {
    const s = Math.max(0, Math.floor(seconds || 0));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function duration(seconds) {
    const h = Math.floor(seconds / 3600); const m = Math.floor((seconds % 3600) / 60);
    return h ? h + " h " + m + " min" : m + " min";
  }
  function priority(p) { return tr("page_priority_" + p); }
  function fill(list, items, render, emptyKey) {
    const el = $(list); if (!el) return;
    el.replaceChildren();
    if (!items.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = tr(emptyKey); el.appendChild(li); return; }
    for (const item of items) el.appendChild(render(item));
  }
  function chart(id, labels, values, todayIndex, unit) {
    const box = $(id); if (!box) return;
    const w = 280, h = 120, pad = 18, gap = 6;
    const max = Math.max(1, ...values);
    const bw = (w - gap * (values.length + 1)) / values.length;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h + pad}`);
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    values.forEach((v, i) => {
      const bh = (h - pad) * v / max;
      const x = gap + i * (bw + gap);
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", x); r.setAttribute("y", h - bh); r.setAttribute("width", bw); r.setAttribute("height", Math.max(bh, 1));
      r.setAttribute("class", "bar" + (i === todayIndex ? " today" : ""));
      const title = document.createElementNS(SVG, "title");
      title.textContent = labels[i] + ": " + v + (unit ? " " + unit : "");
      r.appendChild(title);
      svg.appendChild(r);
      const val = document.createElementNS(SVG, "text");
      val.setAttribute("x", x + bw / 2); val.setAttribute("y", h - bh - 3); val.setAttribute("text-anchor", "middle");
      val.setAttribute("class", "value"); val.textContent = v;
      svg.appendChild(val);
      const day = document.createElementNS(SVG, "text");
      day.setAttribute("x", x + bw / 2); day.setAttribute("y", h + 13); day.setAttribute("text-anchor", "middle");
      day.textContent = labels[i].slice(8) + "/" + labels[i].slice(5, 7);
      svg.appendChild(day);
    });
    box.replaceChildren(svg);
  }

  function render(s) {
    badge("online", s.hub_connected ? tr("page_online") : tr("page_offline"), s.hub_connected ? "ok" : "bad");
    setText("hub", s.hub_url === s.hub_home ? s.hub_url : tr("page_hub_standby", { url: s.hub_url, home: s.hub_home }));
    setText("last-sync", s.last_sync_at ? clockTime(s.last_sync_at) : tr("page_never"));
    setText("manifest", s.manifest_version === null ? "—" : String(s.manifest_version));
    setText("outbox", String((s.outbox.plays || 0) + (s.outbox.health || 0)));
    const dl = $("downloads");
    if (dl) {
      dl.replaceChildren();
      const entries = Object.entries(s.downloads || {});
      const p = document.createElement("p"); p.className = "muted";
      p.textContent = entries.length ? tr("page_downloading") : tr("page_up_to_date");
      dl.appendChild(p);
      for (const [sha, d] of entries) {
        const pct = d.total ? Math.round(100 * d.done / d.total) : 0;
        const row = document.createElement("div");
        row.textContent = sha.slice(0, 10) + "… " + pct + "% (" + bytes(d.done) + " / " + bytes(d.total) + ")";
        const box = document.createElement("div"); box.className = "progress";
        const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = pct + "%";
        box.appendChild(bar); row.appendChild(box); dl.appendChild(row);
      }
    }
    const now = s.now_playing;
    if (now) {
      const test = now.bulletin_id === "__test_tone__";
      setText("now-title", test ? tr("page_test_item") : now.title);
      badge("now-priority", priority(now.priority), now.priority);
      setText("now-elapsed", tr("page_elapsed", { elapsed: mmss(s.position_s) }));
      const pct = s.now_playing_duration_s ? Math.min(100, 100 * (s.position_s || 0) / s.now_playing_duration_s) : 100;
      $("now-progress").style.width = pct + "%";
      $("now-progress-box").hidden = false;
    } else {
      setText("now-title", tr("page_nothing_playing"));
      badge("now-priority", "", "");
      $("now-priority").hidden = true;
      setText("now-elapsed", "");
      $("now-progress-box").hidden = true;
    }
    if (now) $("now-priority").hidden = false;
    fill("next-list", (s.queue || []).slice(0, 5), (q) => {
      const li = document.createElement("li");
      li.textContent = q.title + " ";
      const b = document.createElement("span"); b.className = "badge " + q.priority; b.textContent = priority(q.priority);
      li.appendChild(b); return li;
    }, "page_nothing_next");
    const hhmm = new Date(s.now_local).toLocaleTimeString("en-GB", { timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit", hour12: false });
    fill("window-list", s.windows || [], (w) => {
      const li = document.createElement("li");
      const open = w.start < w.end ? (hhmm >= w.start && hhmm < w.end) : (hhmm >= w.start || hhmm < w.end);
      li.textContent = w.start + " – " + w.end + (open ? " · " + tr("page_window_open") : "");
      if (open) li.className = "open";
      return li;
    }, "page_no_windows");
    // What the device finds wrong now, in the staff's words, with the device's own reason.
    fill("fault-list", Object.entries(s.faults || {}), ([name, why]) => {
      const li = document.createElement("li");
      li.className = "fault";
      li.dataset.fault = name;
      const key = "page_fault_" + name;
      li.textContent = L[key] ? tr(key) : name;
      if (why) {
        const detail = document.createElement("span"); detail.className = "muted";
        detail.textContent = " (" + why + ")";
        li.appendChild(detail);
      }
      return li;
    }, "page_no_faults");
    badge("clock-badge", s.clock.trusted ? tr("page_clock_trusted") : tr("page_clock_untrusted"), s.clock.trusted ? "ok" : "bad");
    setText("clock-reason", tr("page_clock_src_" + (s.clock.source || "system")));
    setText("clock-offset", s.clock.offset_s === null || s.clock.offset_s === undefined ? "" : tr("page_clock_offset", { offset: (s.clock.offset_s >= 0 ? "+" : "") + Math.round(s.clock.offset_s) + " s" }));
    setText("volume", s.volume + "%");
    setText("cache", tr("page_cache_value", { objects: s.cache.objects, size: bytes(s.cache.bytes) }));
    setText("disk", tr("page_disk_value", { free: bytes(s.system.disk_free_bytes), total: bytes(s.system.disk_total_bytes) }));
    const temp = s.system.temperature_celsius;
    setText("temperature", temp === null || temp === undefined ? tr("page_unknown") : temp.toFixed(1) + " °C");
    setText("uptime", duration(s.system.agent_uptime_s));
    const days = s.chart_days || [];
    setText("plays-today", tr("page_plays_today", { n: (s.plays_by_day || [0]).slice(-1)[0] }));
    chart("chart-plays", days, s.plays_by_day || [], days.length - 1, "");
    chart("chart-uptime", days, s.uptime_hours_by_day || [], days.length - 1, "h");
    const body = $("recent-body");
    if (body) {
      body.replaceChildren();
      const plays = s.recent_plays || [];
      if (!plays.length) {
        const tr0 = document.createElement("tr"); const td = document.createElement("td");
        td.colSpan = 4; td.className = "muted"; td.textContent = tr("page_no_plays"); tr0.appendChild(td); body.appendChild(tr0);
      }
      for (const p of plays) {
        const row = document.createElement("tr");
        for (const text of [clockTime(p.started_at), p.title, priority(p.priority), tr("page_outcome_" + p.outcome)]) {
          const td = document.createElement("td"); td.textContent = text; row.appendChild(td);
        }
        body.appendChild(row);
      }
    }
    setText("refresh-note", tr("page_updated", { time: clockTime(s.now_local) }));
    document.body.dataset.updated = String(Date.now());
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      render(await response.json());
    } catch (e) {
      setText("refresh-note", tr("page_refresh_failed"));
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  const range = $("volume-range"); const number = $("volume-input");
  if (range && number) {
    range.addEventListener("input", () => { number.value = range.value; });
    number.addEventListener("input", () => { range.value = number.value; });
  }
  render(JSON.parse(document.getElementById("initial-status").textContent));
  setTimeout(refresh, REFRESH_MS);
})();
