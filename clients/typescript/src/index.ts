// The persona store over HTTP, for TypeScript and JavaScript applications (Node 18+, browsers, Deno).
//
// The same methods, in camelCase, and the same error kinds as personae's Python client
// (personae.client.PersonaeClient). Types come from the service's OpenAPI schema
// (src/schema.ts, generated: `npm run schema`). No dependency but `fetch`.

import type { components } from "./schema.js";

type Schemas = components["schemas"];
export type AddResult = Schemas["AddResult"];
export type PersonaState = Schemas["PersonaState"];
export type PersonaVersion = Schemas["PersonaVersion"];
export type Verdict = Schemas["Verdict"];
export type Ranking = Schemas["Ranking"];
export type Job = Schemas["Job"];
export type Preference = Schemas["PreferenceIn"];
export type StoredPreference = Schemas["StoredPreference"];
export type ErrorDetail = Schemas["ErrorDetail"];
export type Message = { role: string; content: string };

/** Every error the client raises: the service's error `kind`, HTTP `status` (0: unreachable), and what it says. */
export class PersonaeError extends Error {
  readonly kind: string;
  readonly status: number;
  readonly field: string | null;
  readonly record: number | null;
  readonly retryAfter: number | null;
  readonly failure: string | null;
  readonly requestId: string | null;

  constructor(status: number, detail: Partial<ErrorDetail> & { type: string; message: string }) {
    super(detail.message);
    this.name = new.target.name;
    this.kind = detail.type;
    this.status = status;
    this.field = detail.field ?? null;
    this.record = detail.record ?? null;
    this.retryAfter = detail.retry_after ?? null;
    this.failure = detail.failure ?? null;
    this.requestId = detail.request_id ?? null;
  }
}

/** The store holds nothing for this user (in this token's tenant). */
export class UnknownUserError extends PersonaeError {
  constructor(readonly userId: string, status: number, detail: ErrorDetail) { super(status, detail); }
}

/** A preference (its 1-based `record` in the request) or a field is at fault. */
export class DataError extends PersonaeError {}

/** The judge's model failed (`failure`: timeout, rate_limit, server, ...); `retryAfter` says when to try again. */
export class LMCallError extends PersonaeError {}

/** The user has no persona yet (an export before the first fit). */
export class NoPersonaError extends PersonaeError {}

/** Any other refusal of the service (a bad token; one without the scope the call needs, kind "forbidden"; a body
 * too large; a server that stays away). */
export class ServiceError extends PersonaeError {}

export interface ClientOptions {
  /** A bearer token bound to one tenant (`personae serve-api tokens create --tenant T`). */
  token?: string;
  /** Tries of a request that failed on the way (connection, 429, 502, 503, 504); default 3. */
  retries?: number;
  /** Milliseconds before a request is abandoned; default 60 000. */
  timeoutMs?: number;
  /** Another `fetch` (a proxy, a test double). */
  fetch?: typeof fetch;
}

const RETRIED = new Set([429, 502, 503, 504]);

/** The persona store of a `personae serve-api` service. */
export class PersonaeClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly fetcher: typeof fetch;

  constructor(baseUrl = "http://127.0.0.1:8000", options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.retries = options.retries ?? 3;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Store preferences, idempotent by `id` (else by content): a retry reports them as `duplicates`. */
  addPreferences(userId: string, preferences: Preference[]): Promise<AddResult> {
    return this.call("POST", `${user(userId)}/preferences`, userId, { preferences });
  }

  /** The user's stored preferences, in the order they arrived. */
  async preferences(userId: string): Promise<StoredPreference[]> {
    const answer = await this.call<{ preferences: StoredPreference[] }>("GET", `${user(userId)}/preferences`, userId);
    return answer.preferences;
  }

  /** This tenant's users in id order, a page at a time; `nextAfter` is null on the last page. */
  async users(options: { limit?: number; after?: string } = {}): Promise<{ users: string[]; nextAfter: string | null }> {
    const query = new URLSearchParams({ limit: String(options.limit ?? 100) });
    if (options.after !== undefined) query.set("after", options.after);
    const answer = await this.call<{ users: string[]; next_after: string | null }>("GET", `/v1/users?${query}`);
    return { users: answer.users, nextAfter: answer.next_after };
  }

  /** Whether the store holds anything for the user. */
  async exists(userId: string): Promise<boolean> {
    try {
      await this.persona(userId);
      return true;
    } catch (error) {
      if (error instanceof UnknownUserError) return false;
      throw error;
    }
  }

  /** The current persona, its version, pairs seen, prequential accuracy and confidence. */
  persona(userId: string): Promise<PersonaState> {
    return this.call("GET", `${user(userId)}/persona`, userId);
  }

  /** Every persona version, oldest first, with how it was made and how it did since. */
  async history(userId: string): Promise<PersonaVersion[]> {
    const answer = await this.call<{ versions: PersonaVersion[] }>("GET", `${user(userId)}/persona/history`, userId);
    return answer.versions;
  }

  /** The user's fitted judge: the JSON `personae fit` writes (the newest version unless `version`). */
  export(userId: string, options: { version?: number } = {}): Promise<Record<string, unknown>> {
    const query = options.version !== undefined ? `?version=${options.version}` : "";
    return this.call("GET", `${user(userId)}/export${query}`, userId);
  }

  /** Which response the user prefers, "A" or "B", with its probability, by the current persona. */
  judge(userId: string, prompt: string, responseA: string, responseB: string,
    options: { abstainBelow?: number } = {}): Promise<Verdict> {
    return this.call("POST", `${user(userId)}/judge`, userId, {
      prompt, response_a: responseA, response_b: responseB,
      ...(options.abstainBelow !== undefined ? { abstain_below: options.abstainBelow } : {}),
    });
  }

  /** The best of several drafts for the user, and their order. */
  rank(userId: string, prompt: string, candidates: string[]): Promise<Ranking> {
    return this.call("POST", `${user(userId)}/rank`, userId, { prompt, candidates });
  }

  /** A system prompt (chat messages) for writing responses this user prefers. */
  async generationMessages(userId: string): Promise<Message[]> {
    const answer = await this.call<{ messages: Message[] }>("GET", `${user(userId)}/generation-prompt`, userId);
    return answer.messages;
  }

  /** Remove everything stored on the user; what was removed, by kind. */
  async forget(userId: string): Promise<Record<string, number>> {
    const answer = await this.call<{ removed: Record<string, number> }>("DELETE", user(userId), userId);
    return answer.removed;
  }

  /** The update job with this id (null: this tenant has no such job). */
  async job(jobId: string): Promise<Job | null> {
    if (!/^[0-9a-f]{32}$/.test(jobId)) return null;
    try {
      return await this.call<Job>("GET", `/v1/jobs/${jobId}`);
    } catch (error) {
      if (error instanceof PersonaeError && error.kind === "not_found") return null;
      throw error;
    }
  }

  /** Wait until the job is done or failed; the job as it stands when `timeoutMs` runs out. */
  async waitJob(jobId: string, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<Job | null> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const found = await this.job(jobId);
      if (found === null || found.status === "done" || found.status === "failed" || Date.now() > deadline) {
        return found;
      }
      await sleep(options.pollMs ?? 200);
    }
  }

  private async call<T>(method: string, path: string, userId?: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resent = false;
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetcher(this.baseUrl + path, {
          method, headers, body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        if (attempt >= this.retries) {
          throw new ServiceError(0, { type: "unreachable", message: `${this.baseUrl}: ${String(error)}` });
        }
        resent = true;
        await sleep(backoff(attempt, null));
        continue;
      }
      if (RETRIED.has(response.status) && attempt < this.retries) {
        resent = true;
        await sleep(backoff(attempt, response.headers.get("Retry-After")));
        continue;
      }
      if (response.ok) return (await response.json()) as T;
      if (resent && method === "DELETE" && response.status === 404) return { removed: {} } as T;
      throw await errorOf(response, userId);
    }
  }
}

function user(userId: string): string {
  if (typeof userId !== "string" || userId === "") throw new TypeError("userId must be a non-empty string");
  return `/v1/users/${encodeURIComponent(userId)}`;
}

function backoff(attempt: number, retryAfter: string | null): number {
  const asked = retryAfter !== null ? Number(retryAfter) * 1000 : NaN;
  return Number.isFinite(asked) ? Math.min(asked, 30_000) : Math.min(250 * 2 ** (attempt - 1), 5_000);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function errorOf(response: Response, userId: string | undefined): Promise<PersonaeError> {
  let detail: ErrorDetail;
  try {
    detail = ((await response.json()) as { error: ErrorDetail }).error;
  } catch {
    detail = { type: "internal", message: `HTTP ${response.status}` } as ErrorDetail;
  }
  const retryAfter = response.headers.get("Retry-After");
  if (retryAfter !== null && detail.retry_after == null) detail = { ...detail, retry_after: Number(retryAfter) };
  const status = response.status;
  if (detail.failure && ["lm_unavailable", "lm_bad_answer", "invalid_request"].includes(detail.type)) {
    return new LMCallError(status, detail);
  }
  if (detail.type === "not_found" && userId !== undefined) return new UnknownUserError(userId, status, detail);
  if (detail.type === "invalid_request") return new DataError(status, detail);
  if (detail.type === "conflict") return new NoPersonaError(status, detail);
  return new ServiceError(status, detail);
}
