using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Tests.Chat.Jinja;

namespace Qwen3Sharp.Tests.Chat.Template;

/// <summary>
/// Conversations rendered through real chat templates; expected prompts are what Python transformers produces
/// (tools/fixtures/chat/gen_chat_cases.py, cross-checked against @huggingface/jinja). Qwen3 cases go through
/// <see cref="ChatTemplate.Load"/> on the bundled Qwen3 tokenizer directory.
/// </summary>
public class ChatTemplateFixtureTests
{
    private static readonly string FixtureDir = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    private static readonly Lazy<JsonObject> Fixture = new(() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, "chat", "chat-template-cases.json")))!);

    private static readonly Lazy<ChatTemplate> Qwen3 = new(() =>
        ChatTemplate.Load(Path.Combine(FixtureDir, "qwen3-tokenizer"))
        ?? throw new InvalidOperationException("qwen3 tokenizer fixture has no chat template"));

    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var c in Fixture.Value["cases"]!.AsArray()) data.Add(c!["id"]!.GetValue<string>());
        return data;
    }

    private static ChatTemplate TemplateFor(string name)
    {
        if (name == "qwen3") return Qwen3.Value;
        var t = Fixture.Value["templates"]![name]!;
        var special = t["special_tokens"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value?.DeepClone());
        return new ChatTemplate(t["source"]!.GetValue<string>(), special, FixedTimeProvider.Instance);
    }

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void Render_FixtureConversation_MatchesTransformers(string id)
    {
        var c = Fixture.Value["cases"]!.AsArray().Single(x => x!["id"]!.GetValue<string>() == id)!;
        var template = TemplateFor(c["template"]!.GetValue<string>());
        var messages = c["messages"]!.AsArray().DeepClone().AsArray();
        var tools = c["tools"] is JsonArray t ? t.DeepClone().AsArray() : null;
        bool agp = c["add_generation_prompt"]!.GetValue<bool>();
        var kwargs = c["kwargs"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value?.DeepClone());

        if (c["expected"] is { } expected)
        {
            Assert.Equal(expected.GetValue<string>(), template.Render(messages, tools, agp, kwargs));
            return;
        }
        var ex = Assert.Throws<ChatTemplateException>(() => template.Render(messages, tools, agp, kwargs));
        Assert.Equal(ChatTemplateErrorKind.Raised, ex.Kind);
        Assert.Equal(c["message"]!.GetValue<string>(), ex.TemplateMessage);
    }

    [Fact]
    public void Load_Qwen3TokenizerDirectory_ReadsOfficialTemplate()
    {
        Assert.Equal(Fixture.Value["templates"]!["qwen3"]!["source"]!.GetValue<string>(), Qwen3.Value.Source);
        Assert.Empty(Qwen3.Value.NamedTemplates);
    }
}
