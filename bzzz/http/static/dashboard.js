// The mesh dashboard: reads the node's state as server-sent events from
// /dashboard/events (through fetch, which can send the bearer token; EventSource
// cannot) and shows it. Every value shown comes from others (names, task titles,
// messages): it reaches the page as text nodes only, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "bzzz-dashboard-token";
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 15000;
  const SILENCE_MS = 45000; // no byte for this long: the stream is dead (keep-alives: 15 s)

  const $ = (id) => document.getElementById(id);

  // Build an element: text children become text nodes; attributes only as properties.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null) continue;
        if (key === "className") node.className = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key === "title") node.title = value;
        else throw new Error("el: unexpected property " + key);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A link only for http(s) URLs: a `javascript:` URL in a task's data is shown as text.
  function link(url, text) {
    if (typeof url === "string" && /^https?:\/\//i.test(url)) {
      const a = el("a", null, text);
      a.href = url;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      return a;
    }
    return document.createTextNode(text);
  }

  function short(id) {
    return typeof id === "string" ? id.slice(0, 12) : "";
  }

  function takeToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      let token = match[1];
      try {
        token = decodeURIComponent(token);
      } catch (_) {
        // keep it as it was given
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      // The token leaves the address bar (and the history) at once.
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function askToken(why) {
    $("token-why").textContent = why;
    $("token-form").hidden = false;
  }

  function fill(tbody, rows, empty, columns) {
    if (rows.length === 0) {
      tbody.replaceChildren(el("tr", null, el("td", { className: "empty" }, empty)));
      tbody.lastChild.firstChild.colSpan = columns;
      return;
    }
    tbody.replaceChildren(...rows);
  }

  function pairs(dl, items) {
    const nodes = [];
    for (const [term, value] of items) {
      nodes.push(el("dt", null, term), el("dd", null, value));
    }
    dl.replaceChildren(...nodes);
  }

  function yesNo(ok, yes, no) {
    return el("span", { className: ok ? "yes" : "no" }, ok ? yes : no);
  }

  function render(state) {
    const node = state.node || {};
    $("cluster").textContent = node.cluster ? "cluster " + node.cluster : "";
    document.title = "BZZZ mesh: " + (node.name || "?");
    if (state.phase !== "running") {
      setStatus("starting", "node " + (node.name || "") + " is " + state.phase);
      $("main").hidden = true;
      return;
    }
    $("main").hidden = false;
    pairs($("node"), [
      ["name", el("span", { className: "leader" }, node.name)],
      ["agent id", el("code", null, node.agent_id)],
      ["role", node.role],
      ["ready", yesNo(node.ready, "ready", "not ready")],
    ]);
    $("reasons").replaceChildren(...(node.reasons || []).map((r) => el("li", null, r)));

    const e = state.election;
    const leader = e.leader ? (e.leader_name || short(e.leader)) : "none";
    pairs($("election"), [
      ["term", String(e.term)],
      ["leader", el("span", { className: "leader", dataset: { leader: leader } }, leader)],
      ["proven", yesNo(e.leader_proven, "proven by the logs", "not proven")],
      ["this node", e.role],
      ["proven terms", String(e.proven_terms)],
      ["leader changes", String(e.leader_changes)],
    ]);

    fill(
      $("agents").tBodies[0],
      state.agents.map((a) =>
        el(
          "tr",
          { dataset: { agent: a.name } },
          el("td", { className: (a.leader ? "leader " : "") + (a.me ? "me" : "") }, a.name),
          el("td", null, a.role),
          el("td", { className: "state" }, a.leader ? "leader" : (a.state || (a.me ? e.role : "-"))),
          el("td", null, yesNo(a.connected, a.me ? "self" : "connected", "not connected")),
          el("td", null, String(a.head)),
          el("td", null, a.tasks.length ? a.tasks.join(", ") : "-"),
          el("td", null, a.we_lack === null ? "-" : a.we_lack + " / " + a.they_lack),
        ),
      ),
      "no members",
      7,
    );

    const counts = state.counts;
    $("tasks-count").textContent =
      "(" + state.tasks.length + " shown of " + state.tasks_total + "; " +
      counts.live_claims + " claims live, " + counts.grants + " granted, " +
      counts.refusals + " refused)";
    fill(
      $("tasks").tBodies[0],
      state.tasks.map((t) =>
        el(
          "tr",
          { dataset: { task: t.id } },
          el("td", { className: "id" }, link(t.url, t.id)),
          el("td", null, t.title),
          el("td", { className: "state" }, t.state),
          el("td", null, t.holder_name || "-"),
          el("td", null, String(t.priority)),
        ),
      ),
      "no tasks on the board",
      5,
    );

    $("threads-count").textContent =
      "(" + state.threads.length + " live shown of " + state.threads_live + "; " +
      counts.escalations + " escalations)";
    fill(
      $("threads").tBodies[0],
      state.threads.map((t) =>
        el(
          "tr",
          { dataset: { thread: t.id } },
          el("td", { className: "id" }, t.id),
          el("td", { className: "state" }, t.state),
          el("td", null, t.why),
          el("td", null, String(t.messages)),
          el("td", null, t.participants.join(", ")),
          el(
            "td",
            null,
            t.last_author ? t.last_author + " (" + t.last_kind + "): " + t.last_text : "-",
          ),
        ),
      ),
      "no live threads",
      6,
    );

    fill(
      $("heads").tBodies[0],
      state.heads.map((h) =>
        el(
          "tr",
          { dataset: { author: h.agent_id } },
          el("td", null, h.name || "(not a member)"),
          el("td", { className: "id", title: h.agent_id }, short(h.agent_id)),
          el("td", null, String(h.seq)),
        ),
      ),
      "no logs",
      3,
    );
    const alerts = Object.entries(counts.alerts).map(([k, n]) => k + " " + n).join(", ");
    const findings = Object.entries(counts.audit_findings).map(([k, n]) => k + " " + n).join(", ");
    $("counts").textContent =
      counts.appended + " entries appended here, " + counts.ingested + " ingested; " +
      counts.peers_connected + " peers connected; alerts: " + alerts +
      "; leadership audit: " + findings;
    setStatus("live", "live: " + node.name + ", updated " + new Date().toLocaleTimeString());
  }

  // One server-sent event block: `event:` and `data:` lines; `:` lines are comments.
  function handle(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (event === "state" && data.length) render(JSON.parse(data.join("\n")));
  }

  let retry = RETRY_MIN_MS;

  async function connect() {
    const token = takeToken();
    if (!token) {
      setStatus("refused", "no token");
      askToken(
        "This page needs the node's dashboard token: open it as /dashboard#token=TOKEN " +
          "(the token is in the file named by http.token_file, by default http.token in " +
          "the node home), or paste it here.",
      );
      return;
    }
    const controller = new AbortController();
    let watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
    try {
      const answer = await fetch("/dashboard/events", {
        headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
        cache: "no-store",
        signal: controller.signal,
      });
      if (answer.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        setStatus("refused", "the token was refused");
        askToken("The node refused this token. " + (await answer.text()));
        return;
      }
      if (!answer.ok) throw new Error("HTTP " + answer.status + ": " + (await answer.text()));
      $("token-form").hidden = true;
      retry = RETRY_MIN_MS;
      const reader = answer.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handle(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      setStatus("down", "the node closed the stream; reconnecting");
    } catch (error) {
      setStatus("down", "disconnected (" + error.message + "); reconnecting");
    } finally {
      clearTimeout(watchdog);
    }
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, RETRY_MAX_MS);
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    $("token-form").hidden = true;
    connect();
  });

  connect();
})();
