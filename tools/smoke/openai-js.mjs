// Smoke test of a running `qwen3 serve` with the official OpenAI JavaScript SDK (not part of CI: needs npm).
//   in a scratch folder: npm install openai, copy this file there (ES modules ignore NODE_PATH), then:
//   node openai-js.mjs [http://127.0.0.1:8000/v1]
// Checks structure only (the demo model's text is noise): models, chat (whole and streamed, thinking on and off),
// tool-call shape with tool_choice naming a function, completions, and an error status.
import OpenAI from "openai";

const baseURL = process.argv[2] ?? "http://127.0.0.1:8000/v1";
const client = new OpenAI({ baseURL, apiKey: "EMPTY" });
const fail = (m) => { console.error("FAIL:", m); process.exit(1); };
const ok = (cond, m) => { if (!cond) fail(m); console.log("ok -", m); };

const models = await client.models.list();
const model = models.data[0].id;
ok(typeof model === "string", `models.list -> ${model}`);

const whole = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, enable_thinking: false });
ok(whole.choices[0].message.role === "assistant" && typeof whole.choices[0].message.content === "string"
  && !whole.choices[0].message.content.includes("<think>"), "chat, thinking off: content only");
ok(whole.usage.completion_tokens === 8 && whole.choices[0].finish_reason === "length", "usage and finish_reason");

let text = "", roles = 0, finishes = 0, usage = null;
const stream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, stream: true,
  stream_options: { include_usage: true }, chat_template_kwargs: { enable_thinking: false } });
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) roles++;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finishes++;
  }
}
ok(roles === 1 && finishes === 1 && usage?.completion_tokens === 6, "stream: one role delta, one finish, usage chunk");

const tools = [{ type: "function", function: { name: "get_weather", description: "Weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
const forced = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "Weather in Paris?" }], tools, max_tokens: 12,
  tool_choice: { type: "function", function: { name: "get_weather" } }, temperature: 0 });
const m = forced.choices[0].message;
ok(m.tool_calls?.length > 0 || m.content.startsWith("<tool_call>"),
  "named tool_choice pre-fills the call (random weights may not finish its JSON)");

const completion = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 5 });
ok(typeof completion.choices[0].text === "string" && completion.usage.completion_tokens === 5, "completions");

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
  fail("unknown model accepted");
} catch (e) {
  ok(e.status === 404 && e.code === "model_not_found", "unknown model -> 404 model_not_found");
}
try {
  await client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], temperature: 5 });
  fail("temperature 5 accepted");
} catch (e) {
  ok(e.status === 400 && e.param === "temperature", "temperature 5 -> 400 naming the field");
}
console.log("all OpenAI JS SDK checks passed");
