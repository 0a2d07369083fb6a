// The client against a real `personae serve-api`, started here with a scripted LM server beside it.
// PERSONAE_BIN names the personae command (default: `personae` on the PATH).
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import {
  DataError, LMCallError, NoPersonaError, PersonaeClient, ServiceError, UnknownUserError,
} from "../dist/index.js";

const personae = process.env.PERSONAE_BIN ?? "personae";
const lm = { mode: "ok" };
let llm, service, url, token, folder;

function answer(body) {
  const system = body.messages[0].content;
  const userText = body.messages[body.messages.length - 1].content;
  if (lm.mode === "server_error") return [500, "upstream exploded"];
  if (system.includes("revised_persona")) return [200, { reasoning: "r", revised_persona: "Prefers short answers; revised." }];
  if (!system.includes("preferred")) return [200, { reasoning: "r", persona: "Prefers short answers." }];
  const first = /response_a ## \]\]\n(.*?)\n/.exec(userText)[1];
  const second = /response_b ## \]\]\n(.*?)\n/.exec(userText)[1];
  return [200, { reasoning: "shorter wins", preferred: first.length <= second.length ? "A" : "B" }];
}

function startLLM() {
  return new Promise((resolve) => {
    const server = createServer((request, response) => {
      let raw = "";
      request.on("data", (chunk) => { raw += chunk; });
      request.on("end", () => {
        const [status, content] = answer(JSON.parse(raw));
        response.writeHead(status, { "Content-Type": "application/json" });
        response.end(status !== 200 ? JSON.stringify({ error: { message: content } }) : JSON.stringify({
          id: "x", object: "chat.completion", created: 0, model: "stub",
          choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: JSON.stringify(content) } }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }));
      });
    });
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

function startService(store, apiBase) {
  return new Promise((resolve, reject) => {
    const child = spawn(personae, ["serve-api", "--store", store, "--port", "0", "--judge", "openai/stub",
      "--api-base", apiBase, "--api-key", "stub-key", "--no-cache", "--lm-retries", "0", "--max-attempts", "1",
      "--debounce", "0", "--token-cache", "0"], { env: { ...process.env, DSPY_CACHEDIR: join(folder, "cache") } });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`serve-api did not start:\n${out}`)), 120_000);
    const read = (chunk) => {
      out += chunk;
      const found = / on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (found) { clearTimeout(timer); resolve([child, found[1]]); }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`serve-api exited ${code}:\n${out}`)); });
  });
}

before(async () => {
  folder = mkdtempSync(join(tmpdir(), "personae-ts-"));
  const store = join(folder, "s.db");
  const made = spawnSync(personae, ["serve-api", "tokens", "create", "--tenant", "acme", "--store", store],
    { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  token = made.stdout.trim().split("\n")[1];
  llm = await startLLM();
  [service, url] = await startService(store, `http://127.0.0.1:${llm.address().port}/v1`);
});

after(() => {
  service?.removeAllListeners("exit");
  service?.kill();
  llm?.close();
});

const pair = (i) => ({ id: `p${i}`, prompt: `question ${i}`, chosen: `ok ${i}`, rejected: `a much longer answer ${i}` });

test("every method answers as the store does", async () => {
  const client = new PersonaeClient(url, { token });
  const added = await client.addPreferences("u1", [1, 2, 3, 4].map(pair));
  assert.deepEqual(added.added, ["p1", "p2", "p3", "p4"]);
  assert.deepEqual((await client.addPreferences("u1", [pair(1)])).duplicates, ["p1"]);   // a retry adds nothing
  const job = await client.waitJob(added.job_id, { timeoutMs: 60_000 });
  assert.equal(job.status, "done");
  const persona = await client.persona("u1");
  assert.equal(persona.persona, "Prefers short answers.");
  assert.equal(persona.pairs_seen, 4);
  assert.equal((await client.history("u1")).length, 1);
  const verdict = await client.judge("u1", "Plan a trip.", "Go.", "A very long plan for the trip.");
  assert.equal(verdict.preferred, "A");
  assert.ok(verdict.probability >= 0.5);
  const ranking = await client.rank("u1", "Plan a trip.", ["A long, long plan.", "Go."]);
  assert.equal(ranking.best, 1);
  const messages = await client.generationMessages("u1");
  assert.match(messages[0].content, /Prefers short answers/);
  assert.equal((await client.export("u1")).persona, "Prefers short answers.");
  assert.equal((await client.preferences("u1")).length, 4);
  await client.addPreferences("u2", [pair(9)]);
  assert.deepEqual(await client.users({ limit: 1 }), { users: ["u1"], nextAfter: "u1" });
  assert.deepEqual(await client.users({ after: "u1" }), { users: ["u2"], nextAfter: null });
  assert.equal(await client.exists("u2"), true);
  assert.equal((await client.forget("u2")).preferences, 1);
  assert.equal(await client.exists("u2"), false);
  assert.equal(await client.job("0".repeat(32)), null);
});

test("errors carry their kind, and the field and record at fault", async () => {
  const client = new PersonaeClient(url, { token, retries: 1 });
  await assert.rejects(client.persona("nobody"), (error) => error instanceof UnknownUserError
    && error.kind === "not_found" && error.userId === "nobody" && error.status === 404);
  await assert.rejects(client.addPreferences("u1", [pair(5), { ...pair(6), chosen: "" }]),
    (error) => error instanceof DataError && error.record === 2 && error.field === "body.preferences.1.chosen");
  await client.addPreferences("fresh", [pair(1)]);
  await assert.rejects(client.export("fresh"), (error) => error instanceof NoPersonaError && error.kind === "conflict");
  const stranger = new PersonaeClient(url, { token: "pst_not-a-token", retries: 1 });
  await assert.rejects(stranger.persona("u1"), (error) => error instanceof ServiceError && error.status === 401
    && error.kind === "unauthorized");
  lm.mode = "server_error";
  try {
    await assert.rejects(client.judge("u1", "p", "a", "b"), (error) => error instanceof LMCallError
      && error.status === 503 && error.kind === "lm_unavailable" && error.retryAfter > 0 && error.failure === "server");
  } finally {
    lm.mode = "ok";
  }
});

test("an add whose answer was lost is sent again and stored once", async () => {
  let dropped = 0;
  const flaky = async (input, init) => {
    const response = await fetch(input, init);
    if (init.method === "POST" && dropped === 0) { dropped += 1; throw new TypeError("connection reset"); }
    return response;
  };
  const client = new PersonaeClient(url, { token, fetch: flaky });
  const result = await client.addPreferences("u3", [pair(7)]);
  assert.equal(dropped, 1);
  assert.deepEqual(result.duplicates, ["p7"]);   // the first try stored it; the retry found it there
  assert.equal((await client.preferences("u3")).length, 1);
});

// The same user, read through three surfaces: this client, the Python client and MCP over /mcp.
const PYTHON_SIDE = `
import asyncio, json, sys
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import TypeAdapter
from personae.client import PersonaeClient
from personae.programs import Verdict
from personae.store import PersonaState, PersonaVersion

url, token, user = sys.argv[1:4]
ask = ("Plan a trip.", "Go.", "A long plan for the trip.")
with PersonaeClient(url, token=token) as client:
    python = {"persona": TypeAdapter(PersonaState).dump_python(client.persona(user), mode="json"),
              "verdict": TypeAdapter(Verdict).dump_python(client.judge(user, *ask), mode="json"),
              "history": TypeAdapter(list[PersonaVersion]).dump_python(client.history(user), mode="json"),
              "messages": client.generation_messages(user)}

async def over_mcp():
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http, \\
            Client(streamable_http_client(url + "/mcp/", http_client=http)) as mcp:
        async def call(name, **arguments):
            result = await mcp.call_tool(name, {"user_id": user, **arguments})
            return json.loads(result.content[0].text)
        return {"persona": await call("get_persona"),
                "verdict": await call("judge_drafts", prompt=ask[0], response_a=ask[1], response_b=ask[2]),
                "history": (await call("persona_history"))["versions"],
                "messages": (await call("system_prompt"))["messages"]}

print(json.dumps({"python": python, "mcp": asyncio.run(over_mcp())}))
`;

test("the Python client and MCP give the same answers for the same user", async () => {
  const python = process.env.PERSONAE_PYTHON ?? "python3";
  const client = new PersonaeClient(url, { token });
  const added = await client.addPreferences("same", [11, 12, 13, 14].map(pair));
  await client.waitJob(added.job_id, { timeoutMs: 60_000 });
  const ours = {
    persona: await client.persona("same"),
    verdict: await client.judge("same", "Plan a trip.", "Go.", "A long plan for the trip."),
    history: await client.history("same"),
    messages: await client.generationMessages("same"),
  };
  // asynchronously: the scripted LM the service asks lives in this process's event loop
  const { stdout } = await promisify(execFile)(python, ["-c", PYTHON_SIDE, url, token, "same"],
    { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  const theirs = JSON.parse(stdout);
  for (const surface of ["python", "mcp"]) {
    assert.deepEqual(theirs[surface].persona, ours.persona, surface);
    assert.deepEqual(theirs[surface].history, ours.history, surface);
    assert.deepEqual(theirs[surface].messages, ours.messages, surface);
    for (const key of ["preferred", "probability", "reasoning", "version", "personalization"]) {
      assert.deepEqual(theirs[surface].verdict[key], ours.verdict[key], `${surface} verdict ${key}`);
    }
  }
});
