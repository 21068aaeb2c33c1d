using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Tests.Chat.Template;

public sealed class ChatTemplateTests : IDisposable
{
    private static readonly string Qwen3Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3-tokenizer");
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen3sharp-chat-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonArray Messages(params (string Role, string Content)[] turns) =>
        new(turns.Select(t => (JsonNode)new JsonObject { ["role"] = t.Role, ["content"] = t.Content }).ToArray());

    private void WriteConfig(JsonNode chatTemplate)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Qwen3Dir, "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = chatTemplate;
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), config.ToJsonString());
    }

    [Fact]
    public void Load_TokenizerConfig_PassesSpecialTokensMapAsVariables()
    {
        WriteConfig("{{ eos_token }}|{{ pad_token }}|{{ bos_token is defined }}|{{ unk_token is defined }}|{{ additional_special_tokens[0] }}|{{ documents }}|{{ tools }}");
        var t = ChatTemplate.Load(_dir)!;
        // bos_token and unk_token are null in Qwen3's config: transformers leaves them out of special_tokens_map.
        Assert.Equal("<|im_end|>|<|endoftext|>|False|False|<|im_start|>|None|None", t.Render(Messages(("user", "x")), null, false));
    }

    [Fact]
    public void Load_ChatTemplateJinjaFile_TakesPrecedenceOverConfig()
    {
        WriteConfig("from config");
        File.WriteAllText(Path.Combine(_dir, "chat_template.jinja"), "from file {{ eos_token }}\n");
        var t = ChatTemplate.Load(_dir)!;
        Assert.Equal("from file <|im_end|>", t.Render(Messages(), null, false));
    }

    [Fact]
    public void Load_NamedTemplateList_UsesDefaultAndSelectsToolUseForTools()
    {
        WriteConfig(new JsonArray(
            new JsonObject { ["name"] = "default", ["template"] = "plain" },
            new JsonObject { ["name"] = "tool_use", ["template"] = "tools: {{ tools|length }}" }));
        var t = ChatTemplate.Load(_dir)!;
        Assert.Equal("default", t.Name);
        Assert.Equal(["default", "tool_use"], t.NamedTemplates.Keys.Order().ToArray());
        Assert.Equal("plain", t.SelectFor(null).Render(Messages(), null, false));
        var tools = new JsonArray(new JsonObject { ["type"] = "function" });
        Assert.Equal("tools: 1", t.SelectFor(tools).Render(Messages(), tools, false));
        Assert.Same(t, t.SelectFor(new JsonArray()));
    }

    [Fact]
    public void Load_SpecialTokensMapAndProcessorTemplate_AreUsedAsFallbacks()
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), "{\"eos_token\": \"</s>\"}");
        File.WriteAllText(Path.Combine(_dir, "special_tokens_map.json"),
            "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"<ignored>\"}");
        File.WriteAllText(Path.Combine(_dir, "chat_template.json"), "{\"chat_template\": \"{{ bos_token }}{{ eos_token }}\"}");
        Assert.Equal("<s></s>", ChatTemplate.Load(_dir)!.Render(Messages(), null, false));
    }

    [Fact]
    public void Load_NoTemplate_ReturnsNull()
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), "{\"eos_token\": \"</s>\"}");
        Assert.Null(ChatTemplate.Load(_dir));
        Assert.Null(ChatTemplate.Load(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void Render_Qwen3EnableThinking_AbsentThinksFalseAppendsEmptyThinkBlock()
    {
        var t = ChatTemplate.Load(Qwen3Dir)!;
        var msgs = Messages(("user", "Hi"));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", t.Render(msgs, null, true));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            t.Render(msgs, null, true, new Dictionary<string, JsonNode?> { ["enable_thinking"] = true }));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            t.Render(msgs, null, true, new Dictionary<string, JsonNode?> { ["enable_thinking"] = false }));
    }

    [Fact]
    public void Render_ExtraVariables_CannotReplaceMessagesToolsOrGenerationFlag()
    {
        var t = new ChatTemplate("{{ messages|length }}|{{ tools }}|{{ add_generation_prompt }}|{{ custom }}|{{ eos_token }}");
        var extra = new Dictionary<string, JsonNode?>
        {
            ["messages"] = new JsonArray(), ["tools"] = "x", ["add_generation_prompt"] = false,
            ["custom"] = new JsonObject { ["a"] = 1 }, ["eos_token"] = "E",
        };
        Assert.Equal("1|None|True|{'a': 1}|E", t.Render(Messages(("user", "u")), null, true, extra));
    }

    [Fact]
    public void Render_JsonNumbers_KeepPythonIntFloatDistinction()
    {
        var t = new ChatTemplate("{{ messages[0].n|tojson }}");
        string Render(JsonNode n) => t.Render(new JsonArray(new JsonObject { ["n"] = n }), null, false);
        Assert.Equal("[1, 1.0, 1e-05, 2.5, -0.0, 1e+20, 1e+22]",
            Render(JsonNode.Parse("[1, 1.0, 1e-5, 2.5, -0.0, 1e20, 1E22]")!));
        Assert.Equal("1.0", Render(JsonValue.Create(1.0)));
        Assert.Equal("3", Render(JsonValue.Create(3)));
        Assert.Equal("0.5", Render(JsonValue.Create(0.5m)));
        Assert.Equal("{\"k\": [true, null, \"s\"]}", Render(new JsonObject { ["k"] = new JsonArray(true, null, "s") }));
    }

    [Fact]
    public void Constructor_SyntaxError_ReportsLineAndColumn()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => new ChatTemplate("line one\n  {% if messages %}\n{{ x + }}\n{% endif %}"));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
        Assert.Equal(3, ex.Line);
        Assert.Equal(8, ex.Column);
        Assert.Contains("line 3", ex.Message);
    }

    [Fact]
    public void Constructor_UnclosedBlock_NamesTheBlock()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => new ChatTemplate("{% for m in messages %}\n{{ m }}"));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
        Assert.Contains("'endfor'", ex.TemplateMessage);
        Assert.Contains("innermost block that needs to be closed is 'for'", ex.TemplateMessage);
    }

    [Fact]
    public void Constructor_UnknownFilter_FailsAtParseWithPosition()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => new ChatTemplate("ok\n{{ messages | frobnicate }}"));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
        Assert.Equal("No filter named 'frobnicate'.", ex.TemplateMessage);
        Assert.Equal((2, 15), (ex.Line, ex.Column));
    }

    [Fact]
    public void Render_RuntimeError_ReportsLineOfFailingExpression()
    {
        var t = new ChatTemplate("a\n{% for m in messages %}\n{{ m.content + 1 }}\n{% endfor %}");
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render(Messages(("user", "x")), null, false));
        Assert.Equal(ChatTemplateErrorKind.Runtime, ex.Kind);
        Assert.Equal(3, ex.Line);
        Assert.Equal("can only concatenate str (not \"int\") to str", ex.TemplateMessage);
    }

    [Fact]
    public void Render_RaiseException_CarriesTemplateMessage()
    {
        var t = new ChatTemplate("{% if messages[0].role != 'user' %}\n  {{ raise_exception('First message must be from the user!') }}\n{% endif %}");
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render(Messages(("assistant", "x")), null, false));
        Assert.Equal(ChatTemplateErrorKind.Raised, ex.Kind);
        Assert.Equal("First message must be from the user!", ex.TemplateMessage);
        Assert.Equal(2, ex.Line);
    }

    [Fact]
    public void Render_UndefinedAttributeOfUndefined_IsRuntimeErrorLikeJinja()
    {
        var t = new ChatTemplate("{{ messages[0].missing.deeper }}");
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render(Messages(("user", "x")), null, false));
        Assert.Equal("'dict object' has no attribute 'missing'", ex.TemplateMessage);
    }

    [Fact]
    public void Render_SameTemplateFromManyThreads_IsDeterministic()
    {
        var t = ChatTemplate.Load(Qwen3Dir)!;
        var msgs = Messages(("system", "s"), ("user", "u"), ("assistant", "<think>\nr\n</think>\n\na"), ("user", "v"));
        string expected = t.Render(msgs, null, true);
        var results = new string[16];
        Parallel.For(0, results.Length, i => results[i] = t.Render(msgs.DeepClone().AsArray(), null, true));
        Assert.All(results, r => Assert.Equal(expected, r));
    }
}
