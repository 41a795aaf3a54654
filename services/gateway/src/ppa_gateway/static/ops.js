// Operators' dashboard: live event tail (server-sent events) and rebuild progress.
(function () {
  "use strict";
  const list = document.getElementById("event-list");
  if (list) {
    const seen = new Set(Array.from(list.querySelectorAll("details.event")).map((d) => d.dataset.key));
    const dot = document.getElementById("live-dot");
    const text = document.getElementById("live-text");
    const count = document.getElementById("live-count");
    let received = 0;
    const fmt = new Intl.DateTimeFormat("ja-JP", {timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
    const el = (tag, cls, txt) => { const e = document.createElement(tag); if (cls) e.className = cls; if (txt !== undefined) e.textContent = txt; return e; };
    const source = new EventSource(list.dataset.stream);
    source.addEventListener("ready", () => { dot.className = "dot on"; text.textContent = "ライブ受信中"; });
    source.onerror = () => { dot.className = "dot off"; text.textContent = "再接続中…"; };
    source.addEventListener("ppa-event", (msg) => {
      const e = JSON.parse(msg.data);
      if (seen.has(e.key)) return;
      seen.add(e.key);
      const d = el("details", "event fresh");
      d.dataset.key = e.key;
      const s = el("summary");
      s.append(el("span", "time", fmt.format(new Date(e.time)).replace(/\//g, "-")), el("span", "topic", e.topic),
               el("span", "type", e.type), el("span", "subject", e.subject));
      const corr = el("a", "corr", e.correlationid.slice(0, 12));
      corr.href = "/ops/events?correlation=" + encodeURIComponent(e.correlationid) + "&window=24h";
      corr.title = "この相関IDを追跡";
      s.append(corr);
      const body = el("div", "event-body");
      const p = el("p");
      const a = el("a", null, "詳細");
      a.href = "/ops/events/" + e.topic + "/" + e.partition + "/" + e.offset;
      p.append(a, document.createTextNode(" ・ パーティション " + e.partition + " / オフセット " + e.offset));
      body.append(p, el("pre", null, e.json));
      d.append(s, body);
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      list.prepend(d);
      received += 1;
      count.textContent = String(received);
    });
  }
  document.querySelectorAll(".job[data-progress]").forEach((job) => {
    const bar = job.querySelector("progress");
    const label = job.querySelector(".job-text");
    const phases = {starting: "準備中", replaying: "再生中", swapping: "切替中", catching_up: "追いつき中", done: "完了", failed: "失敗"};
    const poll = async () => {
      const r = await fetch(job.dataset.progress, {credentials: "same-origin"});
      if (!r.ok) return;
      const s = await r.json();
      bar.value = s.percent;
      label.textContent = phases[s.phase] + " " + s.read + "/" + s.total + (s.error ? " " + s.error : "");
      if (s.phase === "done" || s.phase === "failed") {
        const button = job.closest("td").querySelector("button");
        if (button) button.disabled = false;
        return;
      }
      setTimeout(poll, 700);
    };
    poll();
  });
})();
