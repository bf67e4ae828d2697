"""The embedded server (`python -m sverm.server`, what `make run` starts) with OpenAI's and
DeepSeek's endpoints configured, as a user sets OPENAI_API_KEY/OPENAI_BASE_URL: every built-in
template completes through a real OpenAI-compatible HTTP server, over the HTTP API, with
`simulated: false` and a cost report equal to the ledger the server wrote; and a run whose
researchers call `http_fetch` on a real page, through the provider's tool calls."""

import re
import sqlite3
from decimal import Decimal

import httpx

from tests.llm_server import LLMServer
from tests.processes import embedded_server_env, manage, start_embedded_server, stop
from tests.provider_runs import LedgerRow, check_every_template, check_tool_run
from tests.web_page import PageServer

API_KEY = re.compile(r"API key: (sk-sverm-\S+)")


def test_every_builtin_template_runs_through_a_real_provider(tmp_path):
    with LLMServer() as llm:
        env = embedded_server_env(
            tmp_path, SVERM_TOOL_FETCH_ALLOWED_HOSTS="127.0.0.1", **llm.provider_env()
        )
        manage(env, "migrate", "--noinput")
        out = manage(env, "bootstrap", "--email", "llm@example.com", "--plan", "team")
        headers = {"Authorization": f"Bearer {API_KEY.search(out).group(1)}"}
        database = tmp_path / "data" / "sverm.sqlite3"

        def ledger(run_id: str) -> list[LedgerRow]:
            with sqlite3.connect(database) as db:
                rows = db.execute(
                    "SELECT agent_id, model, provider, tokens_in, tokens_out, cost_usd "
                    "FROM billing_usagerecord WHERE run_id = ?",
                    (run_id,),
                ).fetchall()
            return [LedgerRow(*row[:5], Decimal(str(row[5]))) for row in rows]

        process, base, _ = start_embedded_server(env, tmp_path)
        try:
            with (
                httpx.Client(base_url=base, headers=headers, timeout=10) as http,
                PageServer() as page,
            ):
                check_every_template(http, llm, ledger)
                check_tool_run(http, llm, page.url, ledger)
        finally:
            stop(process)
