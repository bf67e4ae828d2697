// The live run page: follows /api/runs/{id}/stream (same origin, session cookie) and renders each
// event. Reconnects with ?after=<last seq seen> until the terminal event, so nothing is shown
// twice or missed. Every value from the stream is set with textContent, never as HTML.
"use strict";

(function () {
  const root = document.getElementById("run-live");
  if (!root) return;
  const config = JSON.parse(document.getElementById("run-live-config").textContent);

  const TERMINAL = {
    "run.completed": "completed",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
  };
  // Close codes the stream refuses with: retrying would not help.
  const REFUSED = {
    4400: "The stream refused the request.",
    4401: "Not signed in (or the session expired): sign in again and reload.",
    4403: "You may not follow this run.",
    4404: "This run is not visible to you.",
  };
  const MAX_LOG_LINES = 2000;
  const MAX_RETRY_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("run-status"),
    stream: $("stream-state"),
    progressBar: $("progress-bar"),
    progressFill: $("progress-fill"),
    progressText: $("progress-text"),
    agentsActive: $("agents-active"),
    agentsTotal: $("agents-total"),
    cost: $("cost"),
    costBar: $("cost-bar"),
    costFill: $("cost-fill"),
    agents: $("agents"),
    cardTemplate: $("agent-card-template"),
    log: $("log"),
    logCount: $("log-count"),
    outcome: $("run-outcome"),
    outcomeTitle: $("outcome-title"),
    outcomeError: $("outcome-error"),
    outputBox: $("outcome-output-box"),
    output: $("outcome-output"),
  };

  const state = {
    lastSeq: 0,
    terminal: false,
    socket: null,
    retries: 0,
    retryTimer: null,
    budget: Number(config.budgetUsd) || 0,
    logLines: 0,
    agents: new Map(), // id -> {card, parts, cost, tokensIn, tokensOut, calls, counted}
  };

  // --- formatting ------------------------------------------------------------------------------

  function usd(value, digits) {
    const number = Number(value);
    return "$" + (Number.isFinite(number) ? number : 0).toFixed(digits === undefined ? 6 : digits);
  }

  function clock(ts) {
    const date = ts ? new Date(ts) : new Date();
    if (Number.isNaN(date.getTime())) return "";
    return date.toISOString().slice(11, 19);
  }

  function shorten(text, limit) {
    const value = text === undefined || text === null ? "" : String(text);
    return value.length > limit ? value.slice(0, limit - 1) + "…" : value;
  }

  // --- run-level view --------------------------------------------------------------------------

  function setStatus(status) {
    el.status.textContent = status;
    el.status.dataset.status = status;
    root.dataset.status = status;
  }

  function setStream(stateName, text) {
    el.stream.dataset.state = stateName;
    el.stream.textContent = text;
  }

  function setProgress(fraction) {
    const percent = Math.round(Math.min(Math.max(Number(fraction) || 0, 0), 1) * 100);
    el.progressFill.style.width = percent + "%";
    el.progressText.textContent = percent + "%";
    el.progressBar.setAttribute("aria-valuenow", String(percent));
  }

  function setCost(costUsd) {
    if (costUsd === undefined || costUsd === null) return;
    const cost = Number(costUsd) || 0;
    el.cost.textContent = usd(cost);
    const ratio = state.budget > 0 ? Math.min(cost / state.budget, 1) : 0;
    const percent = Math.round(ratio * 1000) / 10;
    // A sliver for any spend at all, so a small cost against a large budget still shows.
    el.costFill.style.width = (cost > 0 ? Math.max(percent, 0.5) : 0) + "%";
    el.costBar.setAttribute("aria-valuenow", String(percent));
    el.costBar.dataset.level = ratio >= 0.9 ? "high" : ratio >= 0.6 ? "mid" : "low";
  }

  function setAgents(active, total) {
    if (active !== undefined && active !== null) el.agentsActive.textContent = String(active);
    if (total !== undefined && total !== null) el.agentsTotal.textContent = String(total);
  }

  function showOutcome(status, data) {
    el.outcome.hidden = false;
    el.outcome.dataset.status = status;
    const titles = {
      completed: "Run completed",
      failed: "Run failed",
      cancelled: "Run cancelled",
    };
    el.outcomeTitle.textContent = (titles[status] || status) + " · " + usd(data.cost_usd);
    if (status === "failed") {
      el.outcomeError.hidden = false;
      el.outcomeError.textContent =
        (data.error_code || "error") + ": " + (data.error_message || "no message");
    }
    if (data.output) {
      el.outputBox.hidden = false;
      el.output.textContent = data.output;
    }
  }

  // --- agents ----------------------------------------------------------------------------------

  function agent(id, role, model) {
    let entry = state.agents.get(id);
    if (!entry) {
      const card = el.cardTemplate.content.firstElementChild.cloneNode(true);
      card.dataset.agentId = id;
      const parts = {
        id: card.querySelector(".rl-agent-id"),
        state: card.querySelector(".rl-agent-state"),
        role: card.querySelector(".rl-agent-role"),
        model: card.querySelector(".rl-agent-model"),
        text: card.querySelector(".rl-agent-text"),
        cost: card.querySelector(".rl-agent-cost"),
        tokens: card.querySelector(".rl-agent-tokens"),
      };
      parts.id.textContent = id;
      entry = { card, parts, cost: 0, tokensIn: 0, tokensOut: 0, calls: 0, counted: false };
      state.agents.set(id, entry);
      el.agents.appendChild(card);
    }
    if (role) entry.parts.role.textContent = role;
    if (model) entry.parts.model.textContent = model;
    return entry;
  }

  function setAgentState(entry, name) {
    entry.card.dataset.state = name;
    entry.parts.state.textContent = name;
    // run.progress reports the active count only when a call finishes; the cards know sooner.
    let working = 0;
    for (const other of state.agents.values()) {
      if (other.card.dataset.state === "working") working += 1;
    }
    setAgents(working, null);
  }

  function addAgentCost(entry, data) {
    entry.cost += Number(data.cost_usd) || 0;
    entry.tokensIn += Number(data.tokens_in) || 0;
    entry.tokensOut += Number(data.tokens_out) || 0;
    entry.counted = true;
    entry.parts.cost.textContent = usd(entry.cost);
    const calls = entry.calls + (entry.calls === 1 ? " call" : " calls");
    entry.parts.tokens.textContent =
      entry.tokensIn || entry.tokensOut
        ? entry.tokensIn + " in / " + entry.tokensOut + " out · " + calls
        : calls;
  }

  // --- the log ---------------------------------------------------------------------------------

  function describe(message) {
    const data = message.data || {};
    switch (message.type) {
      case "run.started":
        return "Run started";
      case "agent.started":
        return [data.model, shorten(data.task, 200)].filter(Boolean).join(" · ");
      case "agent.delegated":
        return "→ " + (data.target || "?") + ": " + shorten(data.summary, 200);
      case "agent.message":
        return (
          shorten(data.summary, 240) +
          " (" + (data.tokens_in || 0) + " in / " + (data.tokens_out || 0) + " out, " +
          usd(data.cost_usd) + ")"
        );
      case "agent.completed":
        return "done · " + usd(data.cost_usd);
      case "run.progress":
        return (
          "progress " + Math.round((Number(data.progress) || 0) * 100) + "% · " +
          usd(data.cost_usd) + " · active " + (data.agents_active ?? "?") + "/" +
          (data.agents_total ?? "?")
        );
      case "run.completed":
        return "Run completed · " + usd(data.cost_usd);
      case "run.failed":
        return "Run failed · " + (data.error_code || "") + ": " + shorten(data.error_message, 300);
      case "run.cancelled":
        return "Run cancelled · " + usd(data.cost_usd);
      case "tool.called":
        return "→ " + (data.tool || "?") + " " + shorten(data.arguments, 200);
      case "tool.result":
        return (
          (data.tool || "?") + " · " + (data.duration_ms || 0) + " ms · " +
          (data.error ? "error: " + shorten(data.error, 200) : shorten(data.summary, 200))
        );
      case "approval.requested":
        return "waiting for approval: " + (data.tool || "?") + " " + shorten(data.arguments, 200);
      case "approval.decided":
        return (data.tool || "?") + " " + (data.decision || "decided") +
          (data.reason ? " · " + shorten(data.reason, 200) : "");
      case "run.paused":
        return "paused: needs " + usd(data.needed_usd) + " more budget";
      case "run.budget_raised":
        return "budget raised to " + usd(data.to_usd);
      default:
        return shorten(JSON.stringify(data), 300);
    }
  }

  function logLine(message, text) {
    const atBottom = el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 24;
    const line = document.createElement("li");
    line.dataset.seq = String(message.seq);
    line.dataset.type = message.type;
    const parts = [
      ["rl-time", clock(message.ts)],
      ["rl-seq", "#" + message.seq],
      ["rl-type", message.type],
      ["rl-agent-ref", message.agent_id || ""],
      ["rl-text", text],
    ];
    for (const [cls, value] of parts) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = value;
      line.appendChild(span);
    }
    el.log.appendChild(line);
    state.logLines += 1;
    while (el.log.childElementCount > MAX_LOG_LINES) el.log.firstElementChild.remove();
    el.logCount.textContent = String(state.logLines);
    if (atBottom) el.log.scrollTop = el.log.scrollHeight;
  }

  // --- one event -------------------------------------------------------------------------------

  function apply(message) {
    const data = message.data || {};
    const id = message.agent_id;
    switch (message.type) {
      case "run.started":
        setStatus("running");
        break;
      case "agent.started": {
        const entry = agent(id, null, data.model);
        entry.calls += 1;
        entry.counted = false;
        setAgentState(entry, "working");
        if (data.task) entry.parts.text.textContent = shorten(data.task, 400);
        break;
      }
      case "agent.delegated": {
        agent(id);
        if (data.target) {
          const target = agent(data.target);
          if (target.card.dataset.state === "waiting") setAgentState(target, "assigned");
          target.parts.text.textContent = shorten(data.summary, 400);
        }
        break;
      }
      case "agent.message": {
        const entry = agent(id);
        entry.parts.text.textContent = shorten(data.summary, 400);
        addAgentCost(entry, data);
        break;
      }
      case "agent.completed": {
        const entry = agent(id);
        // A call's cost comes with its agent.message; count it here only if that was missing.
        if (!entry.counted) addAgentCost(entry, { cost_usd: data.cost_usd });
        setAgentState(entry, "done");
        break;
      }
      case "run.progress":
        setProgress(data.progress);
        setCost(data.cost_usd);
        setAgents(null, data.agents_total);
        break;
      case "approval.requested":
      case "run.paused":
        // The decisions are made in forms the server renders once the run has paused.
        if (!state.reloading) {
          state.reloading = true;
          window.setTimeout(() => window.location.reload(), 1500);
        }
        break;
      default:
        break;
    }
    if (TERMINAL[message.type]) {
      const status = TERMINAL[message.type];
      state.terminal = true;
      root.dataset.terminal = "true";
      setStatus(status);
      setCost(data.cost_usd);
      setAgents(0, null);
      if (status === "completed") setProgress(1);
      for (const entry of state.agents.values()) {
        if (entry.card.dataset.state === "working") setAgentState(entry, status);
      }
      showOutcome(status, data);
    }
    logLine(message, describe(message));
  }

  // --- the stream ------------------------------------------------------------------------------

  function streamUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const query = "?after=" + encodeURIComponent(String(state.lastSeq));
    return scheme + "//" + window.location.host + config.streamPath + query;
  }

  function connect() {
    state.retryTimer = null;
    if (state.terminal || state.socket) return;
    setStream("connecting", "stream: connecting (after #" + state.lastSeq + ")");
    const socket = new WebSocket(streamUrl());
    state.socket = socket;

    socket.addEventListener("open", () => {
      setStream("live", "stream: live");
    });

    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_error) {
        return;
      }
      if (typeof message.seq !== "number" || message.seq <= state.lastSeq) return;
      state.retries = 0;
      state.lastSeq = message.seq;
      root.dataset.lastSeq = String(message.seq);
      apply(message);
    });

    socket.addEventListener("close", (event) => {
      if (state.socket === socket) state.socket = null;
      if (state.terminal) {
        setStream("closed", "stream: finished");
        return;
      }
      if (REFUSED[event.code]) {
        setStream("refused", "stream: " + REFUSED[event.code]);
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (state.retryTimer || state.terminal) return;
    const delay = Math.min(500 * 2 ** state.retries, MAX_RETRY_MS) + Math.random() * 250;
    state.retries += 1;
    setStream(
      "reconnecting",
      "stream: dropped, reconnecting in " + Math.ceil(delay / 1000) + "s (after #" +
        state.lastSeq + ")"
    );
    state.retryTimer = window.setTimeout(connect, delay);
  }

  // Back online: do not wait out the back-off.
  window.addEventListener("online", () => {
    if (state.retryTimer) {
      window.clearTimeout(state.retryTimer);
      connect();
    }
  });

  for (const planned of config.agents || []) agent(planned.id, planned.role, planned.model);
  setCost(config.costUsd);
  connect();
})();
