using System.ClientModel;
using System.Text;
using System.Text.Json.Nodes;
using Json.Schema;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using Qwen3Sharp.Server;

namespace Qwen3Sharp.Tests.Server;

/// <summary>response_format through the official OpenAI .NET SDK; answers validated with JsonSchema.Net.</summary>
public sealed class StructuredOutputServerTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string Schema = """{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer","minimum":0,"maximum":9},"tag":{"enum":["a","b"]}},"required":["ok","n","tag"],"additionalProperties":false}""";

    private readonly ServerHarness _server = fixture.Server;

    private ChatClient Client() => new(ServerHarness.ModelName, new ApiKeyCredential("not-checked"),
        new OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(30) });

    private static void AssertValid(string content)
    {
        EvaluationResults r = JsonSchema.FromText(Schema).Evaluate(JsonNode.Parse(content));
        Assert.True(r.IsValid, content);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Sdk_JsonSchema_AnswerValidates(bool stream)
    {
        var options = new ChatCompletionOptions
        {
            ResponseFormat = OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat("answer", BinaryData.FromString(Schema), jsonSchemaIsStrict: true),
            Temperature = 1.5f,
        };
        for (int i = 0; i < 3; i++)
        {
            string content;
            if (stream)
            {
                var sb = new StringBuilder();
                await foreach (StreamingChatCompletionUpdate u in Client().CompleteChatStreamingAsync([new UserChatMessage("Hi")], options))
                {
                    foreach (ChatMessageContentPart p in u.ContentUpdate)
                    {
                        sb.Append(p.Text);
                    }
                }

                content = sb.ToString();
            }
            else
            {
                ChatCompletion c = await Client().CompleteChatAsync([new UserChatMessage("Hi")], options);
                content = c.Content[0].Text;
            }

            AssertValid(content);
        }
    }

    [Fact]
    public async Task Http_JsonObjectThinkingOff_AndRegexChoice()
    {
        JsonNode r = await _server.PostOkAsync("/v1/chat/completions", new JsonObject
        {
            ["model"] = ServerHarness.ModelName,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            ["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "a", ["schema"] = JsonNode.Parse(Schema) } },
            ["enable_thinking"] = false,
        });
        AssertValid(r["choices"]![0]!["message"]!["content"]!.GetValue<string>());

        JsonNode c = await _server.PostOkAsync("/v1/chat/completions", new JsonObject
        {
            ["model"] = ServerHarness.ModelName,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            ["structured_outputs"] = new JsonObject { ["choice"] = new JsonArray("yes", "no", "maybe") },
            ["enable_thinking"] = false,
        });
        Assert.Contains(c["choices"]![0]!["message"]!["content"]!.GetValue<string>(), new[] { "yes", "no", "maybe" });
    }

    [Theory]
    [InlineData("""{"type":"json_schema","json_schema":{"name":"a","schema":"{not json"}}""", "not JSON")]
    [InlineData("""{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":{"type":"array","uniqueItems":true}}}""", "uniqueItems")]
    [InlineData("""{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"string","minLength":3,"maxLength":1}}}""", "minLength")]
    public async Task Http_BadSchema_400NamingTheProblem(string format, string named)
    {
        using var content = new StringContent(new JsonObject
        {
            ["model"] = ServerHarness.ModelName,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            ["response_format"] = JsonNode.Parse(format),
        }.ToJsonString(), Encoding.UTF8, "application/json");
        HttpResponseMessage response = await _server.Http.PostAsync("/v1/chat/completions", content);
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains(named, body);
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Http_ThinkingOn_ReasoningIsFree_AnswerValidates(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream);
        body["enable_thinking"] = true;
        body["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "a", ["schema"] = JsonNode.Parse(Schema) } };
        string reasoning, content;
        if (stream)
        {
            SseResult sse = await _server.StreamAsync("/v1/chat/completions", body);
            (reasoning, content) = (sse.Delta("reasoning_content"), sse.Delta("content"));
        }
        else
        {
            JsonNode message = (await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!;
            (reasoning, content) = ((string)message["reasoning_content"]!, (string)message["content"]!);
        }

        Assert.Equal(Scripts.Reasoning, reasoning.Trim());   // the scripted reasoning, untouched by the constraint
        AssertValid(content);
    }

    public enum Mood { Calm, Stormy }

    public sealed record Verdict(bool Ok, int N, Mood Tag);

    [Fact]
    public async Task MicrosoftExtensionsAI_GetResponseAsyncOfT_ThroughTheOpenAIAdapter()
    {
        IChatClient client = Client().AsIChatClient();
        for (int i = 0; i < 3; i++)
        {
            ChatResponse<Verdict> response = await client.GetResponseAsync<Verdict>("Judge this.", new ChatOptions { Temperature = 1.5f, Seed = i });
            Assert.True(response.TryGetResult(out Verdict? verdict), response.Text);
            Assert.True(Enum.IsDefined(verdict!.Tag));
            Assert.True(JsonSchema.FromText("""{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"},"tag":{"enum":["calm","stormy","Calm","Stormy"]}},"required":["ok","n","tag"],"additionalProperties":false}""")
                .Evaluate(JsonNode.Parse(response.Text)).IsValid, response.Text);
        }
    }

    [Fact]
    public async Task Http_SchemaOverTheCompileBudget_Is400_AndTheServerStaysUsable()
    {
        // The budget is real (a Stopwatch deadline checked while the first mask is computed); a zero budget makes any schema exceed it.
        await using ServerHarness server = await ServerHarness.StartAsync(new ServerOptions { StructuredCompileTimeout = TimeSpan.Zero });
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "a", ["schema"] = JsonNode.Parse(Schema) } };
        HttpResponseMessage response = await server.PostAsync("/v1/chat/completions", body.ToJsonString());
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("too long", text);
        Assert.Contains("response_format.json_schema.schema", text);

        JsonObject tools = ServerHarness.ChatBody("Hi");
        tools["tools"] = new JsonArray(JsonNode.Parse("""{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}"""));
        tools["tool_choice"] = "required";
        response = await server.PostAsync("/v1/chat/completions", tools.ToJsonString());
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("too long", await response.Content.ReadAsStringAsync());

        JsonNode plain = await server.PostOkAsync("/v1/chat/completions", ServerHarness.ChatBody("Hi"));
        Assert.Equal(Scripts.Answer, (string)plain["choices"]![0]!["message"]!["content"]!);
    }

    [Theory, InlineData(false), InlineData(true)]
    public async Task Http_GbnfGrammar_AnswerIsInTheLanguage(bool stream)
    {
        JsonObject body = ServerHarness.ChatBody("Hi", stream);
        body["enable_thinking"] = false;
        body["grammar"] = "root ::= answer \".\"\nanswer ::= (\"yes\" | \"no\") (\", \" [0-9]{1,2} \" points\")?";
        string content = stream
            ? (await _server.StreamAsync("/v1/chat/completions", body)).Delta("content")
            : (string)(await _server.PostOkAsync("/v1/chat/completions", body))["choices"]![0]!["message"]!["content"]!;
        Assert.Matches("^(yes|no)(, [0-9]{1,2} points)?\\.$", content);
    }

    [Fact]
    public async Task Http_BadGbnf_400NamingTheLine()
    {
        JsonObject body = ServerHarness.ChatBody("Hi");
        body["grammar"] = "root ::= \"a\"\nroot ::= \"b\"";
        HttpResponseMessage response = await _server.PostAsync("/v1/chat/completions", body.ToJsonString());
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("grammar line 2: rule 'root' is defined twice", text);
    }
}
