using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat.Jinja;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Chat;

/// <summary>
/// A model's chat template, rendered exactly as transformers' <c>apply_chat_template</c> renders it:
/// variables are the tokenizer's special-tokens map (<c>bos_token</c>, <c>eos_token</c>, …), then the extra
/// kwargs (<c>enable_thinking</c>, …), then <c>messages</c>, <c>tools</c>, <c>documents</c> (None) and
/// <c>add_generation_prompt</c>. A kwarg that is absent is undefined in the template.
/// </summary>
public sealed class ChatTemplate
{
    private static readonly string[] SpecialTokenAttributes =
        ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens"];

    private static readonly HashSet<string> ReservedVariables = new(StringComparer.Ordinal)
    {
        "messages", "tools", "add_generation_prompt",
    };

    private readonly JinjaTemplate _template;
    private readonly KeyValuePair<string, JinjaValue>[] _specialTokens;
    private readonly TimeProvider _time;
    private Dictionary<string, ChatTemplate> _named = new(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="source"/> (throws <see cref="ChatTemplateException"/> on a syntax error).</summary>
    /// <param name="source">Jinja2 template text.</param>
    /// <param name="specialTokens">Variables such as <c>bos_token</c>/<c>eos_token</c> (transformers' special_tokens_map).</param>
    /// <param name="timeProvider">Clock for <c>strftime_now</c>; the system clock when null.</param>
    public ChatTemplate(string source, IReadOnlyDictionary<string, JsonNode?>? specialTokens = null, TimeProvider? timeProvider = null)
    {
        _template = JinjaTemplate.Parse(source);
        _specialTokens = specialTokens is null
            ? []
            : specialTokens.Select(kv => new KeyValuePair<string, JinjaValue>(kv.Key, JinjaJson.FromNode(kv.Value))).ToArray();
        _time = timeProvider ?? TimeProvider.System;
    }

    public string Source => _template.Source;

    /// <summary>The name of this template in a multi-template config ("default", "tool_use", …), else null.</summary>
    public string? Name { get; private init; }

    /// <summary>All named templates of the model (empty when the config holds a single template string).</summary>
    public IReadOnlyDictionary<string, ChatTemplate> NamedTemplates => _named;

    /// <summary>
    /// The template transformers would pick: "tool_use" when <paramref name="tools"/> is non-empty and the model
    /// has one, otherwise this (default) template.
    /// </summary>
    public ChatTemplate SelectFor(JsonArray? tools) =>
        tools is { Count: > 0 } && _named.TryGetValue("tool_use", out var toolUse) ? toolUse : this;

    /// <summary>
    /// Loads the chat template of a Hugging Face model directory: <c>chat_template.jinja</c> if present, else
    /// <c>tokenizer_config.json</c>'s <c>chat_template</c> (a string, or a list of <c>{name, template}</c> of which
    /// "default" is used); <c>additional_chat_templates/*.jinja</c> add named ones. Special tokens come from
    /// <c>tokenizer_config.json</c>. Returns null when the model has no chat template.
    /// </summary>
    public static ChatTemplate? Load(string modelDirectory, TimeProvider? timeProvider = null)
    {
        string configPath = Path.Combine(modelDirectory, "tokenizer_config.json");
        JsonObject? config = ModelFile.TryResolve(configPath) is not null ? ParseObject(configPath) : null;
        var specialTokens = SpecialTokensOf(config);
        // Older models keep special tokens in special_tokens_map.json; tokenizer_config.json wins where both set one.
        string mapPath = Path.Combine(modelDirectory, "special_tokens_map.json");
        if (ModelFile.TryResolve(mapPath) is not null && ParseObject(mapPath) is { } map)
            foreach (var (k, v) in SpecialTokensOf(map))
                specialTokens.TryAdd(k, v);

        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        string? defaultSource = null;
        string jinjaPath = Path.Combine(modelDirectory, "chat_template.jinja");
        if (ModelFile.TryResolve(jinjaPath) is not null) defaultSource = File.ReadAllText(jinjaPath);

        JsonNode? templateNode = config?["chat_template"];
        // Processor-style models keep the template in chat_template.json.
        string processorPath = Path.Combine(modelDirectory, "chat_template.json");
        if (templateNode is null && ModelFile.TryResolve(processorPath) is not null) templateNode = ParseObject(processorPath)?["chat_template"];
        switch (templateNode)
        {
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                defaultSource ??= v.GetValue<string>();
                break;
            case JsonArray list:
                foreach (var item in list)
                {
                    if (item is not JsonObject entry || entry["name"]?.GetValue<string>() is not { } name ||
                        entry["template"]?.GetValue<string>() is not { } template)
                        throw new InvalidDataException($"{configPath}: chat_template list entries must be {{\"name\", \"template\"}} objects");
                    sources[name] = template;
                }
                break;
        }

        string extraDir = Path.Combine(modelDirectory, "additional_chat_templates");
        if (Directory.Exists(extraDir))
            foreach (var file in Directory.EnumerateFiles(extraDir, "*.jinja").Order(StringComparer.Ordinal))
                sources.TryAdd(Path.GetFileNameWithoutExtension(file), File.ReadAllText(ModelFile.Resolve(file)));

        if (defaultSource is not null) sources["default"] = defaultSource;
        if (sources.Count == 0) return null;

        var named = new Dictionary<string, ChatTemplate>(StringComparer.Ordinal);
        foreach (var (name, source) in sources)
            named[name] = new ChatTemplate(source, specialTokens, timeProvider) { Name = name };
        var main = named.TryGetValue("default", out var d) ? d : named.First().Value;
        bool multi = named.Count > 1 || defaultSource is null;
        foreach (var t in named.Values) t._named = multi ? named : new Dictionary<string, ChatTemplate>(StringComparer.Ordinal);
        return main;
    }

    private static JsonObject? ParseObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid JSON ({e.Message})", e);
        }
    }

    /// <summary>transformers' <c>special_tokens_map</c>: the set (non-empty) special-token attributes.</summary>
    private static Dictionary<string, JsonNode?> SpecialTokensOf(JsonObject? config)
    {
        var map = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        if (config is null) return map;
        foreach (string attr in SpecialTokenAttributes)
        {
            var node = config[attr];
            switch (node)
            {
                case JsonValue v when v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length > 0:
                    map[attr] = JsonValue.Create(v.GetValue<string>());
                    break;
                case JsonObject o when o["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String:
                    map[attr] = JsonValue.Create(c.GetValue<string>()); // AddedToken serialised as {"content": ...}
                    break;
                case JsonArray a when a.Count > 0:
                    var list = new JsonArray();
                    foreach (var item in a)
                        list.Add(item is JsonObject io ? io["content"]?.DeepClone() : item?.DeepClone());
                    map[attr] = list;
                    break;
            }
        }
        return map;
    }

    /// <summary>
    /// Renders a conversation. <paramref name="messages"/> and <paramref name="tools"/> are passed as the
    /// dicts/lists transformers would receive from the same JSON; <paramref name="extraVariables"/> carries
    /// chat_template_kwargs (e.g. <c>enable_thinking</c>) and may override special tokens, but not
    /// <c>messages</c>, <c>tools</c> or <c>add_generation_prompt</c>.
    /// </summary>
    public string Render(JsonArray messages, JsonArray? tools, bool addGenerationPrompt,
        IReadOnlyDictionary<string, JsonNode?>? extraVariables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var vars = new List<KeyValuePair<string, JinjaValue>>(_specialTokens.Length + 8);
        vars.AddRange(_specialTokens);
        vars.Add(new("documents", JinjaValue.None));
        if (extraVariables is not null)
            foreach (var kv in extraVariables)
                if (!ReservedVariables.Contains(kv.Key)) vars.Add(new(kv.Key, JinjaJson.FromNode(kv.Value)));
        vars.Add(new("messages", JinjaJson.FromNode(messages)));
        vars.Add(new("tools", tools is null ? JinjaValue.None : JinjaJson.FromNode(tools)));
        vars.Add(new("add_generation_prompt", JinjaValue.FromBool(addGenerationPrompt)));
        return _template.Render(vars, _time);
    }

    /// <summary>Renders with arbitrary top-level variables (already converted), for callers that need full control.</summary>
    public string Render(IEnumerable<KeyValuePair<string, JinjaValue>> variables) => _template.Render(variables, _time);
}
