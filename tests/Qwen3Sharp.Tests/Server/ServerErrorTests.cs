using System.Net;
using System.Text.Json.Nodes;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Tests.Server;

/// <summary>Every refusal in OpenAI's error shape: 400, 401, 404, 413, 429 and a 500 without internals.</summary>
public sealed class ServerErrorTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private readonly ServerHarness _server = fixture.Server;

    private static async Task<JsonNode> AssertError(HttpResponseMessage response, HttpStatusCode status, string? param = null, string? code = null)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        JsonNode error = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
        Assert.False(string.IsNullOrWhiteSpace((string?)error["type"]));
        Assert.True(error.AsObject().ContainsKey("param"));
        Assert.True(error.AsObject().ContainsKey("code"));
        if (param is not null)
        {
            Assert.Equal(param, (string?)error["param"]);
        }

        if (code is not null)
        {
            Assert.Equal(code, (string?)error["code"]);
        }

        Assert.DoesNotContain(" at Qwen3Sharp", text);
        return error;
    }

    public static TheoryData<string, string?> BadChatFields => new()
    {
        { """ "temperature": 2.5 """, "temperature" },
        { """ "temperature": -0.1 """, "temperature" },
        { """ "temperature": "hot" """, "temperature" },
        { """ "top_p": 0 """, "top_p" },
        { """ "top_p": 1.5 """, "top_p" },
        { """ "n": 0 """, "n" },
        { """ "n": 99 """, "n" },
        { """ "max_tokens": -1 """, "max_tokens" },
        { """ "max_completion_tokens": -5 """, "max_completion_tokens" },
        { """ "presence_penalty": 2.5 """, "presence_penalty" },
        { """ "frequency_penalty": -3 """, "frequency_penalty" },
        { """ "logprobs": true, "top_logprobs": 21 """, "top_logprobs" },
        { """ "top_logprobs": 2 """, "top_logprobs" },
        { """ "logprobs": false, "top_logprobs": 1 """, "top_logprobs" },
        { """ "logit_bias": {"42": 101} """, "logit_bias" },
        { """ "logit_bias": {"hello": 1} """, "logit_bias" },
        { """ "logit_bias": {"999999": 1} """, "logit_bias" },
        { """ "stop": ["a", "b", "c", "d", "e"] """, "stop" },
        { """ "stop": 5 """, "stop" },
        { """ "stream": "yes" """, "stream" },
        { """ "stream_options": {"include_usage": true} """, "stream_options" },
        { """ "response_format": {"type": "xml"} """, "response_format.type" },
        { """ "response_format": {"type": "json_schema"} """, "response_format.json_schema" },
        { """ "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/nope"}}} """, "response_format.json_schema.schema" },
        { """ "tool_choice": "required" """, "tool_choice" },
        { """ "tool_choice": "sometimes" """, "tool_choice" },
        { """ "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}} """, "tool_choice" },
        { """ "tools": [{"type": "custom", "custom": {"name": "f"}}] """, "tools[0].type" },
        { """ "tools": [{"type": "function"}] """, "tools[0].function" },
        { """ "reasoning_effort": "extreme" """, "reasoning_effort" },
        { """ "chat_template_kwargs": {"enable_thinking": "no"} """, "chat_template_kwargs.enable_thinking" },
        { """ "store": true """, "store" },
        { """ "audio": {"voice": "alloy", "format": "wav"} """, "audio" },
        { """ "modalities": ["text", "audio"] """, "modalities" },
        { """ "modalities": [1] """, "modalities" },
        { """ "chat_template_kwargs": {"messages": []} """, "chat_template_kwargs.messages" },
        { """ "chat_template_kwargs": {"add_generation_prompt": false} """, "chat_template_kwargs.add_generation_prompt" },
        { """ "prediction": {"type": "content", "content": "x"} """, "prediction" },
        { """ "functions": [{"name": "f"}] """, "functions" },
        { """ "verbosity": "low" """, "verbosity" },
        { """ "web_search_options": {} """, "web_search_options" },
        { """ "service_tier": "gold" """, "service_tier" },
        { """ "top_k": -2 """, "top_k" },
        { """ "min_p": 1.5 """, "min_p" },
        { """ "repetition_penalty": 0 """, "repetition_penalty" },
        { """ "thinking_budget": -1 """, "thinking_budget" },
        { """ "seed": "abc" """, "seed" },
    };

    [Theory, MemberData(nameof(BadChatFields))]
    public async Task Chat_BadField_400NamingIt(string fields, string? param)
    {
        string json = $$"""{"model": "{{ServerHarness.ModelName}}", "messages": [{"role": "user", "content": "Hi"}], {{fields}} }""";
        JsonNode error = await AssertError(await _server.PostAsync("/v1/chat/completions", json), HttpStatusCode.BadRequest, param);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
    }

    public static TheoryData<string, string> BadMessages => new()
    {
        { """ "messages": [] """, "messages" },
        { """ "messages": "hi" """, "messages" },
        { """ "messages": [{"content": "hi"}] """, "messages[0].role" },
        { """ "messages": [{"role": "wizard", "content": "hi"}] """, "messages[0].role" },
        { """ "messages": [{"role": "user"}] """, "messages[0].content" },
        { """ "messages": [{"role": "user", "content": 5}] """, "messages[0].content" },
        { """ "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}] """, "messages[0].content[0].type" },
        { """ "messages": [{"role": "tool", "content": "x"}] """, "messages[0].tool_call_id" },
        { """ "messages": [{"role": "assistant", "content": "x", "tool_calls": [{"type": "function"}]}] """, "messages[0].tool_calls[0]" },
    };

    [Theory, MemberData(nameof(BadMessages))]
    public async Task Chat_BadMessages_400NamingThem(string messages, string param)
    {
        string json = $$"""{"model": "{{ServerHarness.ModelName}}", {{messages}} }""";
        await AssertError(await _server.PostAsync("/v1/chat/completions", json), HttpStatusCode.BadRequest, param);
    }

    /// <summary>Every field of a valid request replaced by each JSON kind: answered 200 or 4xx, never 500.</summary>
    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/completions")]
    public async Task AnyFieldAnyJsonKind_NeverServerError(string path)
    {
        string[] fields = path.EndsWith("chat/completions", StringComparison.Ordinal)
            ? ["model", "messages", "temperature", "top_p", "n", "stream", "stream_options", "stop", "max_tokens", "max_completion_tokens",
               "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "tools", "tool_choice",
               "parallel_tool_calls", "response_format", "user", "service_tier", "store", "metadata", "reasoning_effort", "modalities",
               "top_k", "min_p", "repetition_penalty", "enable_thinking", "chat_template_kwargs", "return_reasoning", "thinking_budget",
               "structured_outputs", "grammar"]
            : ["model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n", "presence_penalty",
               "seed", "stop", "stream", "stream_options", "suffix", "temperature", "top_p", "user", "top_k", "min_p", "repetition_penalty"];
        JsonNode?[] kinds = [null, true, 3, -1.5, "x", new JsonArray(), new JsonArray(1, "a"), new JsonObject(), new JsonObject { ["a"] = new JsonArray() }];
        foreach (string field in fields)
        {
            foreach (JsonNode? kind in kinds)
            {
                JsonObject body = path.EndsWith("chat/completions", StringComparison.Ordinal)
                    ? ServerHarness.ChatBody("Hi")
                    : new JsonObject { ["model"] = ServerHarness.ModelName, ["prompt"] = "x", ["max_tokens"] = 2 };
                body[field] = kind?.DeepClone();
                using HttpResponseMessage r = await _server.PostAsync(path, body);
                string text = await r.Content.ReadAsStringAsync();
                Assert.True((int)r.StatusCode is 200 or 400 or 404, $"{field} = {kind?.ToJsonString() ?? "null"}: {(int)r.StatusCode} {text}");
            }
        }

        if (path.EndsWith("chat/completions", StringComparison.Ordinal))
        {
            foreach (string role in new[] { "user", "assistant", "tool", "system" })
            {
                foreach (string field in new[] { "role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", "reasoning" })
                {
                    foreach (JsonNode? kind in kinds)
                    {
                        JsonObject body = ServerHarness.ChatBody("Hi");
                        var message = new JsonObject { ["role"] = role, ["content"] = "x", ["tool_call_id"] = "c", [field] = kind?.DeepClone() };
                        body["messages"]!.AsArray().Insert(0, message);
                        using HttpResponseMessage r = await _server.PostAsync(path, body);
                        string text = await r.Content.ReadAsStringAsync();
                        Assert.True((int)r.StatusCode is 200 or 400, $"{role}.{field} = {kind?.ToJsonString() ?? "null"}: {(int)r.StatusCode} {text}");
                    }
                }
            }
        }

        await _server.WaitForIdleAsync();
    }

    [Theory]
    [InlineData("{\"model\": ")]
    [InlineData("")]
    [InlineData("[1, 2]")]
    [InlineData("null")]
    public async Task Chat_MalformedJson_400(string json)
    {
        await AssertError(await _server.PostAsync("/v1/chat/completions", json), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Chat_MissingModel_400()
    {
        await AssertError(await _server.PostAsync("/v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}]}"""),
            HttpStatusCode.BadRequest, "model", "missing_required_parameter");
    }

    [Fact]
    public async Task Chat_UnknownModel_404ModelNotFound()
    {
        await AssertError(await _server.PostAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi", model: "gpt-4o")),
            HttpStatusCode.NotFound, "model", "model_not_found");
        await AssertError(await _server.Http.GetAsync("/v1/models/gpt-4o"), HttpStatusCode.NotFound, "model", "model_not_found");
    }

    [Fact]
    public async Task UnknownUrl_404InOpenAiShape()
    {
        await AssertError(await _server.PostAsync("/v1/embeddings", "{}"), HttpStatusCode.NotFound, code: "unknown_url");
        await AssertError(await _server.Http.GetAsync("/v2/models"), HttpStatusCode.NotFound, code: "unknown_url");
    }

    [Fact]
    public async Task Chat_PromptLongerThanContext_400()
    {
        await using ServerHarness small = await ServerHarness.StartAsync(contextSize: 64);
        string longText = string.Join(' ', Enumerable.Repeat("word", 200));
        await AssertError(await small.PostAsync("/v1/chat/completions", ServerHarness.ChatBody(longText)), HttpStatusCode.BadRequest, "messages");
        await AssertError(await small.PostAsync("/v1/chat/completions", ServerHarness.ChatBody(longText, stream: true)), HttpStatusCode.BadRequest, "messages");
        await small.WaitForIdleAsync();
    }

    [Fact]
    public async Task Chat_EngineFailure_500WithoutInternals()
    {
        JsonNode error = await AssertError(await _server.PostAsync("/v1/chat/completions", ServerHarness.ChatBody("boom")),
            HttpStatusCode.InternalServerError);
        Assert.Equal("server_error", (string?)error["type"]);
        Assert.DoesNotContain("scripted", (string?)error["message"]);
        await _server.WaitForIdleAsync();
    }

    [Fact]
    public async Task ChatStream_EngineFailureMidStream_ErrorEventThenDone()
    {
        JsonObject body = ServerHarness.ChatBody("boom later", stream: true);
        body["enable_thinking"] = false;
        SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
        Assert.True(sse.EndedWithDone);
        JsonNode error = Assert.Single(sse.Events, e => e["error"] is not null)["error"]!;
        Assert.Equal("server_error", (string?)error["type"]);
        Assert.Equal("?", sse.Delta("content").Substring(0, 1));
        await _server.WaitForIdleAsync();
    }

    public static TheoryData<string, string> BadCompletionFields => new()
    {
        { """ "prompt": "x", "suffix": "y" """, "suffix" },
        { """ "prompt": "x", "best_of": 3 """, "best_of" },
        { """ "prompt": "x", "echo": true, "logprobs": 1 """, "logprobs" },
        { """ "prompt": "x", "logprobs": 21 """, "logprobs" },
        { """ "prompt": "x", "max_tokens": -1 """, "max_tokens" },
        { """ "prompt": "x", "temperature": 9 """, "temperature" },
        { """ "prompt": "x", "n": 0 """, "n" },
        { """ "prompt": [] """, "prompt" },
        { """ "prompt": ["a", 1] """, "prompt" },
        { """ "prompt": [1, 999999] """, "prompt" },
        { """ "prompt": {"text": "a"} """, "prompt" },
        { """ "max_tokens": 5 """, "prompt" },
    };

    [Theory, MemberData(nameof(BadCompletionFields))]
    public async Task Completions_BadField_400NamingIt(string fields, string param)
    {
        string json = $$"""{"model": "{{ServerHarness.ModelName}}", {{fields}} }""";
        await AssertError(await _server.PostAsync("/v1/completions", json), HttpStatusCode.BadRequest, param);
    }

    [Theory]
    [InlineData("/tokenize", "{}", "content")]
    [InlineData("/detokenize", "{}", "tokens")]
    [InlineData("/detokenize", """{"tokens": [1, -1]}""", "tokens")]
    [InlineData("/detokenize", """{"tokens": "abc"}""", "tokens")]
    [InlineData("/apply-template", "{}", "messages")]
    public async Task Utility_BadBody_400(string path, string json, string param)
    {
        await AssertError(await _server.PostAsync(path, json), HttpStatusCode.BadRequest, param);
    }

    [Fact]
    public async Task ApiKey_RequiredWhenSet_ConstantTimeBearerCheck()
    {
        await using ServerHarness server = await ServerHarness.StartAsync(new ServerOptions { ApiKey = "sk-test-123" });
        await AssertError(await server.Http.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, code: "invalid_api_key");
        foreach (string wrong in new[] { "sk-test-12", "sk-test-1234", "nope" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Authorization = ServerHarness.Bearer(wrong);
            await AssertError(await server.Http.SendAsync(request), HttpStatusCode.Unauthorized, code: "invalid_api_key");
        }

        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions"))
        {
            request.Content = new StringContent(ServerHarness.ChatBody("Hi").ToJsonString(), System.Text.Encoding.UTF8, "application/json");
            await AssertError(await server.Http.SendAsync(request), HttpStatusCode.Unauthorized);
        }

        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health")).StatusCode);
        server.Http.DefaultRequestHeaders.Authorization = ServerHarness.Bearer("sk-test-123");
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v1/models")).StatusCode);
        await server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi"));
    }

    [Fact]
    public async Task NoApiKeyConfigured_AnyKeyAccepted()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = ServerHarness.Bearer("whatever");
        Assert.Equal(HttpStatusCode.OK, (await _server.Http.SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task Body_OverLimit_413()
    {
        await using ServerHarness server = await ServerHarness.StartAsync(new ServerOptions { MaxRequestBodyBytes = 16 * 1024 });
        string big = new('x', 32 * 1024);
        await AssertError(await server.PostAsync("/v1/chat/completions", ServerHarness.ChatBody(big)), HttpStatusCode.RequestEntityTooLarge,
            code: "request_too_large");
        await server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi"));  // still serving
    }

    [Fact]
    public async Task QueueFull_429WithRetryAfter()
    {
        await using ServerHarness server = await ServerHarness.StartAsync(maxSequences: 1, maxQueued: 0);
        server.Runner.Gate.Reset();
        Task<HttpResponseMessage> first = server.PostAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi"));
        for (int i = 0; i < 500 && server.Engine.PendingRequestCount == 0; i++)
        {
            await Task.Delay(10);
        }

        HttpResponseMessage refused = await server.PostAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi", stream: true));
        await AssertError(refused, HttpStatusCode.TooManyRequests, code: "server_overloaded");
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        server.Runner.Gate.Set();
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        await server.WaitForIdleAsync();
    }
}
