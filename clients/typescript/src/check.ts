// Code that uses the types generated from sverm's OpenAPI schema the way an application would.
// It is never run: `npm run check` regenerates src/schema.d.ts and type-checks this file, so a
// renamed field, a removed operation or a changed type in the schema fails the build here.
import createClient from "openapi-fetch";

import type { components, operations, paths } from "./schema";

type Schemas = components["schemas"];

// The readable operationIds clients are generated with, and the path and method each names.
type Equals<A, B> =
    (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
export type OperationIdsNameTheirPaths = [
    Expect<Equals<operations["create_run"], paths["/v1/swarms"]["post"]>>,
    Expect<Equals<operations["get_run"], paths["/v1/swarms/{id}"]["get"]>>,
    Expect<Equals<operations["cancel_run"], paths["/v1/swarms/{id}"]["delete"]>>,
    Expect<Equals<operations["list_templates"], paths["/v1/templates"]["get"]>>,
    Expect<Equals<operations["api_list_runs"], paths["/api/runs"]["get"]>>,
    Expect<Equals<operations["api_login"], paths["/api/auth/login"]["post"]>>,
];

type Json<Op, Status extends number> = Op extends {
    responses: { [S in Status]: { content: { "application/json": infer Body } } };
}
    ? Body
    : never;
export type CreateRunBody = operations["create_run"]["requestBody"]["content"]["application/json"];
export type RunStatus = Json<operations["get_run"], 200>;
export type RunCancelled = Json<operations["cancel_run"], 200>;
export type TemplateList = Json<operations["list_templates"], 200>;

export type Client = ReturnType<typeof client>;

export function client(baseUrl: string, token?: string) {
    return createClient<paths>({
        baseUrl,
        headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
    });
}

// POST /api/auth/login: a client carrying the JWT, and the refresh token.
export async function login(
    baseUrl: string,
    email: string,
    password: string,
): Promise<{ api: Client; refresh: string }> {
    const { data, error } = await client(baseUrl).POST("/api/auth/login", {
        body: { email, password },
    });
    if (error) throw new Error(`${error.status} ${error.code}: ${error.detail}`);
    return { api: client(baseUrl, data.token), refresh: data.refresh };
}

export class BudgetTooLow extends Error {
    constructor(readonly minimumCost: unknown) {
        super("budget_exceeded");
    }
}

// The create-run body, typed through the operationId.
export function runRequest(template: string, task: string, maxBudgetUsd: number): CreateRunBody {
    return { template, task, max_budget_usd: maxBudgetUsd };
}

// POST /v1/swarms
export async function createRun(
    api: Client,
    template: string,
    task: string,
    maxBudgetUsd: number,
    idempotencyKey: string,
): Promise<{ id: string; status: string; estimatedCostUsd: number; createdAt: Date }> {
    const { data, error, response } = await api.POST("/v1/swarms", {
        params: { header: { "Idempotency-Key": idempotencyKey } },
        body: { template, task, max_budget_usd: maxBudgetUsd, pause_on_budget: false },
    });
    if (error) {
        if (error.error.code === "budget_exceeded") {
            throw new BudgetTooLow(error.error.details["minimum_cost"]);
        }
        throw new Error(`${response.status} ${error.error.code}: ${error.error.message}`);
    }
    return {
        id: data.swarm_id,
        status: data.status,
        estimatedCostUsd: data.estimated_cost_usd,
        createdAt: new Date(data.created_at),
    };
}

// GET /v1/swarms/{id}: narrowed on `status`, every value handled.
export async function runStatus(api: Client, id: string): Promise<string> {
    const { data, error } = await api.GET("/v1/swarms/{id}", { params: { path: { id } } });
    if (error) throw new Error(error.error.message);
    const cost = `$${data.current_cost_usd.toFixed(6)}`;
    switch (data.status) {
        case "running": {
            const waiting = data.awaiting_approval;
            if (waiting !== null) return `waiting for approval ${waiting.approval_id} (${waiting.tool})`;
            const budget = data.awaiting_budget;
            if (budget !== null) return `needs $${budget.needed_usd} more by ${budget.deadline_at}`;
            const percent = Math.round(data.progress * 100);
            return `${percent}%, ${data.agents_active}/${data.agents_total} agents active, ${cost}`;
        }
        case "completed":
            return `completed, ${cost}${data.simulated ? " (simulated)" : ""}`;
        case "failed":
            return `failed: ${data.error?.code ?? "unknown"} ${data.error?.message ?? ""}`;
        case "cancelled":
            return `cancelled, ${cost}`;
        default: {
            const unhandled: never = data.status;
            return unhandled;
        }
    }
}

export function isFinished(run: RunStatus): boolean {
    return run.status === "completed" || run.status === "failed" || run.status === "cancelled";
}

// DELETE /v1/swarms/{id}: what the run had cost when it stopped.
export async function cancelRun(api: Client, id: string): Promise<number> {
    const { data, error } = await api.DELETE("/v1/swarms/{id}", { params: { path: { id } } });
    if (error) throw new Error(error.error.message);
    const cancelled: RunCancelled = data;
    return cancelled.cost_usd;
}

// GET /v1/swarms/{id}/result: the per-agent costs add up to the total.
export async function resultCost(
    api: Client,
    id: string,
): Promise<{ output: string; costUsd: number; lastAction: string | null }> {
    const { data, error } = await api.GET("/v1/swarms/{id}/result", {
        params: { path: { id } },
    });
    if (error) throw new Error(error.error.message);
    const perAgent: Schemas["V1AgentCost"][] = data.cost_report.agents;
    const sum = perAgent.reduce((total, agent) => total + agent.cost_usd, 0);
    const tokens = perAgent.reduce((total, agent) => total + agent.tokens_in + agent.tokens_out, 0);
    if (Math.abs(sum - data.cost_report.total_usd) > 1e-6 || tokens !== data.cost_report.total_tokens) {
        throw new Error(`per-agent costs ${sum} != ${data.cost_report.total_usd}`);
    }
    const last: Schemas["V1AgentLog"] | undefined = data.agent_logs.at(-1);
    return { output: data.output, costUsd: sum, lastAction: last ? `${last.agent_id}: ${last.action}` : null };
}

// GET /v1/swarms (offset pages)
export async function recentRunIds(api: Client): Promise<string[]> {
    const { data, error } = await api.GET("/v1/swarms", { params: { query: { limit: 20, offset: 0 } } });
    if (error) throw new Error(error.error.message);
    return data.items.map((run) => run.swarm_id);
}

// GET /v1/templates
export async function templates(api: Client): Promise<Map<string, string>> {
    const { data, error } = await api.GET("/v1/templates");
    if (error) throw new Error(error.error.message);
    return describeTemplates(data);
}

export function describeTemplates(list: TemplateList): Map<string, string> {
    const topologies: Schemas["TopologyEnum"][] = ["debate", "hierarchical", "parallel", "sequential"];
    return new Map(
        list.templates
            .filter((t) => topologies.includes(t.topology))
            .map((t) => [t.id, `${t.name}: ${t.estimated_cost_range}`]),
    );
}

// GET /v1/usage: the month's total, and per template id.
export async function monthCost(
    api: Client,
    month: string,
): Promise<{ totalUsd: number; byTemplate: Map<string, number> }> {
    const { data, error } = await api.GET("/v1/usage", { params: { query: { month } } });
    if (error) throw new Error(error.error.message);
    const byTemplate = new Map<string, number>();
    for (const [templateId, type] of Object.entries(data.current_month.by_swarm_type)) {
        byTemplate.set(templateId, type.total_usd);
    }
    return { totalUsd: data.current_month.total_usd, byTemplate };
}

// GET /api/usage grouped by model.
export async function costByModel(api: Client, from: string, to: string): Promise<Map<string, number>> {
    const { data, error } = await api.GET("/api/usage", {
        params: { query: { from, to, group_by: "model" } },
    });
    if (error) throw new Error(error.detail);
    const rows = new Map(data.data.map((row) => [row.key ?? "?", row.costUsd]));
    rows.set("total", data.totals.costUsd);
    return rows;
}

// GET /api/runs, keyset pages: follow pageInfo.endCursor.
export async function activeRuns(api: Client): Promise<Schemas["Run"][]> {
    const runs: Schemas["Run"][] = [];
    let after: string | undefined;
    for (;;) {
        const { data, error } = await api.GET("/api/runs", {
            params: { query: { limit: 100, status: ["running", "queued"], ...(after ? { after } : {}) } },
        });
        if (error) throw new Error(`${error.code}: ${error.detail}`);
        runs.push(...data.data);
        const { hasNextPage, endCursor } = data.pageInfo;
        if (!hasNextPage || endCursor === null) return runs;
        after = endCursor;
    }
}

// GET /api/runs/{id}: spent and left of the budget.
export async function runBudget(api: Client, id: string): Promise<{ spent: number; left: number }> {
    const { data, error } = await api.GET("/api/runs/{id}", { params: { path: { id } } });
    if (error) throw new Error(error.detail);
    const terminal: Schemas["RunStatusEnum"][] = ["completed", "failed", "cancelled"];
    const spent = data.currentCostUsd;
    return { spent, left: terminal.includes(data.status) ? 0 : data.maxBudgetUsd - spent };
}
