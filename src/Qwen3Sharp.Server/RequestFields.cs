using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Server;

/// <summary>Checks and conversions of request fields shared by the endpoints; every failure is a 400 naming the field.</summary>
internal static class RequestFields
{
    public static float? Range(double? value, string param, double min, double max, bool minExclusive = false)
    {
        if (value is not { } v)
        {
            return null;
        }

        if (double.IsNaN(v) || v > max || (minExclusive ? v <= min : v < min))
        {
            string low = minExclusive ? $"greater than {min}" : $"at least {min}";
            throw new RequestValidationException($"'{param}' must be {low} and at most {max}; got {v}.", param, "invalid_value");
        }

        return (float)v;
    }

    public static int? AtLeast(int? value, string param, int min)
    {
        if (value is { } v && v < min)
        {
            throw new RequestValidationException($"'{param}' must be at least {min}; got {v}.", param, "invalid_value");
        }

        return value;
    }

    public static int? TopK(int? value)
    {
        // vLLM: -1 (or 0) = no top-k cut.
        if (value is { } k && k < -1)
        {
            throw new RequestValidationException($"'top_k' must be -1 (off) or at least 0; got {k}.", "top_k", "invalid_value");
        }

        return value is -1 ? 0 : value;
    }

    public static float? RepetitionPenalty(double? value)
    {
        if (value is { } v && (double.IsNaN(v) || v <= 0 || v > 2))
        {
            throw new RequestValidationException($"'repetition_penalty' must be greater than 0 and at most 2; got {v}.", "repetition_penalty", "invalid_value");
        }

        return value is { } r ? (float)r : null;
    }

    /// <summary>OpenAI's stop: a string or up to 4 strings. Empty strings stop nothing and are dropped.</summary>
    public static IReadOnlyList<string> Stop(JsonNode? stop)
    {
        switch (stop)
        {
            case null:
                return [];
            case JsonValue v when v.TryGetValue(out string? s):
                return s.Length == 0 ? [] : [s];
            case JsonArray a:
                if (a.Count > 4)
                {
                    throw new RequestValidationException($"'stop' holds at most 4 sequences; got {a.Count}.", "stop", "invalid_value");
                }

                var list = new List<string>(a.Count);
                for (int i = 0; i < a.Count; i++)
                {
                    if (a[i] is not JsonValue item || !item.TryGetValue(out string? text))
                    {
                        throw new RequestValidationException($"'stop[{i}]' must be a string.", $"stop[{i}]", "invalid_type");
                    }

                    if (text.Length > 0)
                    {
                        list.Add(text);
                    }
                }

                return list;
            default:
                throw new RequestValidationException("'stop' must be a string or an array of strings.", "stop", "invalid_type");
        }
    }

    /// <summary>logit_bias: token id (as a string) to a bias in -100..100.</summary>
    public static IReadOnlyDictionary<int, float>? LogitBias(Dictionary<string, double>? bias, int vocabSize)
    {
        if (bias is null || bias.Count == 0)
        {
            return null;
        }

        var result = new Dictionary<int, float>(bias.Count);
        foreach (var (key, value) in bias)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id)
                || id >= vocabSize)
            {
                throw new RequestValidationException(
                    $"'logit_bias' keys must be token ids 0..{vocabSize - 1}; got '{key}'.", "logit_bias", "invalid_value");
            }

            if (double.IsNaN(value) || value < -100 || value > 100)
            {
                throw new RequestValidationException(
                    $"'logit_bias' values must be between -100 and 100; got {value} for token {id}.", "logit_bias", "invalid_value");
            }

            result[id] = (float)value;
        }

        return result;
    }

    public static ulong? Seed(long? seed, int choice) => seed is { } s ? unchecked((ulong)(s + choice)) : null;

    public static bool IncludeUsage(bool stream, StreamOptionsDto? options)
    {
        if (options is null)
        {
            return false;
        }

        if (!stream)
        {
            throw new RequestValidationException("'stream_options' is only allowed when 'stream' is true.", "stream_options", "invalid_value");
        }

        return options.IncludeUsage == true;
    }

    public static string Require(string? value, string param)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new RequestValidationException($"'{param}' is required.", param, "missing_required_parameter");
        }

        return value;
    }

    public static void NotSupported(bool present, string param, string why)
    {
        if (present)
        {
            throw new RequestValidationException($"'{param}' is not supported by this server: {why}", param, "unsupported_parameter");
        }
    }

    /// <summary>
    /// Turns OpenAI messages into what Qwen3's chat template reads: content parts joined into one string
    /// (vLLM joins text parts with a newline), <c>developer</c> as <c>system</c>, assistant reasoning as
    /// <c>reasoning_content</c>. Message text is passed on untouched (<c>/think</c> and <c>/no_think</c> included).
    /// </summary>
    public static JsonArray Messages(JsonArray? messages)
    {
        if (messages is null)
        {
            throw new RequestValidationException("'messages' is required.", "messages", "missing_required_parameter");
        }

        if (messages.Count == 0)
        {
            throw new RequestValidationException("'messages' must hold at least one message.", "messages", "invalid_value");
        }

        var result = new JsonArray();
        for (int i = 0; i < messages.Count; i++)
        {
            string at = $"messages[{i}]";
            if (messages[i] is not JsonObject m)
            {
                throw new RequestValidationException($"'{at}' must be an object.", at, "invalid_type");
            }

            string role = StringField(m, "role", at, required: true)!;
            var output = new JsonObject();
            switch (role)
            {
                case "system" or "developer" or "user":
                    output["role"] = role == "developer" ? "system" : role;
                    output["content"] = Content(m["content"], $"{at}.content", required: true, allowRefusal: false);
                    break;
                case "assistant":
                    output["role"] = "assistant";
                    string? content = Content(m["content"], $"{at}.content", required: false, allowRefusal: true);
                    output["content"] = content ?? "";
                    string? reasoning = StringField(m, "reasoning_content", at, required: false) ?? StringField(m, "reasoning", at, required: false);
                    if (reasoning is not null)
                    {
                        output["reasoning_content"] = reasoning;
                    }

                    if (m["tool_calls"] is { } calls)
                    {
                        output["tool_calls"] = AssistantToolCalls(calls, $"{at}.tool_calls");
                    }

                    if (m["function_call"] is not null)
                    {
                        throw new RequestValidationException(
                            $"'{at}.function_call' is deprecated and not supported; use 'tool_calls'.", $"{at}.function_call", "unsupported_parameter");
                    }

                    break;
                case "tool":
                    output["role"] = "tool";
                    output["content"] = Content(m["content"], $"{at}.content", required: true, allowRefusal: false);
                    output["tool_call_id"] = StringField(m, "tool_call_id", at, required: true);
                    break;
                case "function":
                    throw new RequestValidationException(
                        $"'{at}.role' \"function\" is deprecated and not supported; use \"tool\".", $"{at}.role", "invalid_value");
                default:
                    throw new RequestValidationException(
                        $"'{at}.role' must be one of system, developer, user, assistant or tool; got \"{role}\".", $"{at}.role", "invalid_value");
            }

            if (StringField(m, "name", at, required: false) is { } name)
            {
                output["name"] = name;
            }

            result.Add(output);
        }

        return result;
    }

    private static string? StringField(JsonObject o, string key, string at, bool required)
    {
        JsonNode? node = o[key];
        if (node is null)
        {
            if (required)
            {
                throw new RequestValidationException($"'{at}.{key}' is required.", $"{at}.{key}", "missing_required_parameter");
            }

            return null;
        }

        if (node is not JsonValue v || !v.TryGetValue(out string? s))
        {
            throw new RequestValidationException($"'{at}.{key}' must be a string.", $"{at}.{key}", "invalid_type");
        }

        return s;
    }

    private static string? Content(JsonNode? content, string at, bool required, bool allowRefusal)
    {
        switch (content)
        {
            case null when !required:
                return null;
            case null:
                throw new RequestValidationException($"'{at}' is required.", at, "missing_required_parameter");
            case JsonValue v when v.TryGetValue(out string? s):
                return s;
            case JsonArray parts:
                var texts = new List<string>(parts.Count);
                for (int i = 0; i < parts.Count; i++)
                {
                    string pat = $"{at}[{i}]";
                    if (parts[i] is not JsonObject part || part["type"] is not JsonValue tv || !tv.TryGetValue(out string? type))
                    {
                        throw new RequestValidationException($"'{pat}' must be an object with a 'type'.", pat, "invalid_type");
                    }

                    string field = type switch
                    {
                        "text" => "text",
                        "refusal" when allowRefusal => "refusal",
                        _ => throw new RequestValidationException(
                            $"Content part type \"{type}\" is not supported: this model reads text only.", $"{pat}.type", "unsupported_value"),
                    };
                    if (part[field] is not JsonValue text || !text.TryGetValue(out string? t))
                    {
                        throw new RequestValidationException($"'{pat}.{field}' must be a string.", $"{pat}.{field}", "invalid_type");
                    }

                    texts.Add(t);
                }

                return string.Join('\n', texts);
            default:
                throw new RequestValidationException($"'{at}' must be a string or an array of content parts.", at, "invalid_type");
        }
    }

    private static JsonArray AssistantToolCalls(JsonNode calls, string at)
    {
        if (calls is not JsonArray array)
        {
            throw new RequestValidationException($"'{at}' must be an array.", at, "invalid_type");
        }

        var result = new JsonArray();
        for (int i = 0; i < array.Count; i++)
        {
            string cat = $"{at}[{i}]";
            if (array[i] is not JsonObject call || call["function"] is not JsonObject fn)
            {
                throw new RequestValidationException($"'{cat}' must be an object with a 'function'.", cat, "invalid_type");
            }

            if (StringField(call, "type", cat, required: false) is { } type && type != "function")
            {
                throw new RequestValidationException($"'{cat}.type' must be \"function\".", $"{cat}.type", "invalid_value");
            }

            string name = StringField(fn, "name", $"{cat}.function", required: true)!;
            JsonNode? arguments = fn["arguments"] switch
            {
                null => "{}",
                JsonValue v when v.TryGetValue(out string? s) => s,
                JsonObject o => o.DeepClone(),
                _ => throw new RequestValidationException($"'{cat}.function.arguments' must be a JSON string.", $"{cat}.function.arguments", "invalid_type"),
            };
            var function = new JsonObject { ["name"] = name, ["arguments"] = arguments };
            var output = new JsonObject { ["type"] = "function", ["function"] = function };
            if (StringField(call, "id", cat, required: false) is { } id)
            {
                output["id"] = id;
            }

            result.Add(output);
        }

        return result;
    }

    /// <summary>OpenAI function tools, checked and passed on as given; other tool types are refused.</summary>
    /// <summary>
    /// OpenAI response_format (text, json_object, json_schema), vLLM's structured_outputs (json, regex, choice, grammar)
    /// and llama.cpp's grammar (GBNF); at most one of them may constrain the answer.
    /// </summary>
    public static StructuredOutput? ResponseFormat(JsonObject? format, JsonObject? structuredOutputs, string? grammar = null)
    {
        if (grammar is not null)
        {
            if (format?["type"] is JsonValue gv && gv.TryGetValue(out string? gt) && gt != "text" || structuredOutputs is not null)
            {
                throw new RequestValidationException("'grammar' cannot be combined with a JSON 'response_format' or 'structured_outputs'.", "grammar", "invalid_value");
            }

            return new StructuredOutput(StructuredOutputKind.Grammar, Pattern: grammar, Param: "grammar");
        }

        StructuredOutput? result = null;
        if (format is not null)
        {
            string? type = format["type"] is JsonValue tv && tv.TryGetValue(out string? t) ? t : null;
            switch (type)
            {
                case "text":
                    break;
                case "json_object":
                    result = new StructuredOutput(StructuredOutputKind.JsonObject);
                    break;
                case "json_schema":
                    if (format["json_schema"] is not JsonObject js)
                    {
                        throw new RequestValidationException("'response_format.json_schema' is required and must be an object.", "response_format.json_schema", "invalid_type");
                    }

                    JsonNode? schema = js["schema"];
                    if (schema is JsonValue sv && sv.TryGetValue(out string? text))
                    {
                        try
                        {
                            schema = JsonNode.Parse(text);   // some clients send the schema as a JSON string
                        }
                        catch (System.Text.Json.JsonException ex)
                        {
                            throw new RequestValidationException($"'response_format.json_schema.schema' is not JSON: {ex.Message}", "response_format.json_schema.schema", "invalid_value");
                        }
                    }

                    if (schema is not (JsonObject or JsonValue))
                    {
                        throw new RequestValidationException("'response_format.json_schema.schema' must be a JSON Schema object.", "response_format.json_schema.schema", "invalid_type");
                    }

                    bool strict = js["strict"] is JsonValue st && st.TryGetValue(out bool sb) && sb;
                    result = new StructuredOutput(StructuredOutputKind.JsonSchema, schema, strict, Param: "response_format.json_schema.schema");
                    break;
                default:
                    throw new RequestValidationException($"'response_format.type' must be text, json_object or json_schema; got \"{type}\".", "response_format.type", "invalid_value");
            }
        }

        if (structuredOutputs is null)
        {
            return result;
        }

        if (result is not null || structuredOutputs.Count != 1)
        {
            throw new RequestValidationException("'structured_outputs' takes exactly one of json, regex, choice or grammar, and not together with a JSON 'response_format'.", "structured_outputs", "invalid_value");
        }

        var (key, value) = structuredOutputs.First();
        switch (key)
        {
            case "json":
                return new StructuredOutput(StructuredOutputKind.JsonSchema, value is JsonValue jv && jv.TryGetValue(out string? js2) ? JsonNode.Parse(js2) : value, Param: "structured_outputs.json");
            case "regex" when value is JsonValue rv && rv.TryGetValue(out string? pattern):
                return new StructuredOutput(StructuredOutputKind.Regex, Pattern: pattern, Param: "structured_outputs.regex");
            case "choice" when value is JsonArray { Count: > 0 } choices && choices.All(c => c is JsonValue cv && cv.TryGetValue(out string? _)):
                return new StructuredOutput(StructuredOutputKind.Choice, Choices: [.. choices.Select(c => c!.GetValue<string>())], Param: "structured_outputs.choice");
            case "grammar" when value is JsonValue gv2 && gv2.TryGetValue(out string? gbnf):
                return new StructuredOutput(StructuredOutputKind.Grammar, Pattern: gbnf, Param: "structured_outputs.grammar");
            default:
                throw new RequestValidationException($"'structured_outputs.{key}' is not supported; use json (a schema), regex (a string), choice (a non-empty array of strings) or grammar (GBNF text).", "structured_outputs", "invalid_value");
        }
    }

    public static JsonArray? Tools(JsonArray? tools)
    {
        if (tools is null || tools.Count == 0)
        {
            return null;
        }

        var result = new JsonArray();
        for (int i = 0; i < tools.Count; i++)
        {
            string at = $"tools[{i}]";
            if (tools[i] is not JsonObject tool)
            {
                throw new RequestValidationException($"'{at}' must be an object.", at, "invalid_type");
            }

            string? type = StringField(tool, "type", at, required: true);
            if (type != "function")
            {
                throw new RequestValidationException($"'{at}.type' \"{type}\" is not supported; only \"function\" tools are.", $"{at}.type", "unsupported_value");
            }

            if (tool["function"] is not JsonObject fn)
            {
                throw new RequestValidationException($"'{at}.function' is required and must be an object.", $"{at}.function", "invalid_type");
            }

            if (string.IsNullOrEmpty(StringField(fn, "name", $"{at}.function", required: true)))
            {
                throw new RequestValidationException($"'{at}.function.name' must not be empty.", $"{at}.function.name", "invalid_value");
            }

            if (fn["parameters"] is { } p && p is not JsonObject)
            {
                throw new RequestValidationException($"'{at}.function.parameters' must be a JSON Schema object.", $"{at}.function.parameters", "invalid_type");
            }

            result.Add(tool.DeepClone());
        }

        return result;
    }

    public static ToolChoice ToolChoice(JsonNode? choice, JsonArray? tools)
    {
        ToolChoice result;
        switch (choice)
        {
            case null:
                return Chat.ToolChoice.Auto;
            case JsonValue v when v.TryGetValue(out string? s):
                result = s switch
                {
                    "auto" => Chat.ToolChoice.Auto,
                    "none" => new ToolChoice(ToolChoiceMode.None),
                    "required" => new ToolChoice(ToolChoiceMode.Required),
                    _ => throw new RequestValidationException(
                        $"'tool_choice' must be \"none\", \"auto\", \"required\" or a function; got \"{s}\".", "tool_choice", "invalid_value"),
                };
                break;
            case JsonObject o when o["type"]?.GetValueKind() == JsonValueKind.String && (string?)o["type"] == "function"
                                   && o["function"] is JsonObject fn && fn["name"] is JsonValue nv && nv.TryGetValue(out string? name):
                if (tools?.Any(t => (string?)t?["function"]?["name"] == name) != true)
                {
                    throw new RequestValidationException($"'tool_choice' names function \"{name}\", which is not in 'tools'.", "tool_choice", "invalid_value");
                }

                return new ToolChoice(ToolChoiceMode.Function, name);
            default:
                throw new RequestValidationException(
                    "'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice", "invalid_type");
        }

        if (result.Mode == ToolChoiceMode.Required && tools is null)
        {
            throw new RequestValidationException("'tool_choice' \"required\" needs 'tools'.", "tool_choice", "invalid_value");
        }

        return result;
    }

    /// <summary>
    /// Thinking on or off from the request's forms, strongest first: top-level <c>enable_thinking</c>;
    /// <c>chat_template_kwargs.enable_thinking</c> (left to the chat service, which reads the kwargs);
    /// <c>reasoning_effort</c> ("none" = off, any other level = on); the server default.
    /// </summary>
    public static bool? Thinking(bool? enableThinking, JsonObject? kwargs, string? reasoningEffort, bool? serverDefault)
    {
        bool? effort = reasoningEffort switch
        {
            null => null,
            "none" => false,
            "minimal" or "low" or "medium" or "high" or "xhigh" => true,
            _ => throw new RequestValidationException(
                $"'reasoning_effort' must be none, minimal, low, medium, high or xhigh; got \"{reasoningEffort}\".", "reasoning_effort", "invalid_value"),
        };
        if (kwargs?["enable_thinking"] is { } flag && flag.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
        {
            throw new RequestValidationException("'chat_template_kwargs.enable_thinking' must be a boolean.", "chat_template_kwargs.enable_thinking", "invalid_type");
        }

        if (enableThinking is not null)
        {
            return enableThinking;
        }

        if (kwargs?.ContainsKey("enable_thinking") == true)
        {
            return null;
        }

        return effort ?? serverDefault;
    }

    /// <summary>Template inputs the server sets itself; kwargs may not replace them.</summary>
    private static readonly string[] ReservedTemplateVariables = ["messages", "tools", "add_generation_prompt", "chat_template", "tokenize"];

    /// <summary>Server kwargs under the request's.</summary>
    public static IReadOnlyDictionary<string, JsonNode?>? TemplateKwargs(ServerOptions options, JsonObject? kwargs)
    {
        if (kwargs is not null && ReservedTemplateVariables.FirstOrDefault(kwargs.ContainsKey) is { } reserved)
        {
            throw new RequestValidationException(
                $"'chat_template_kwargs.{reserved}' is set by the server and cannot be overridden.", $"chat_template_kwargs.{reserved}", "invalid_value");
        }

        if (options.DefaultTemplateKwargs.Count == 0 && kwargs is null)
        {
            return null;
        }

        var merged = new Dictionary<string, JsonNode?>();
        foreach (var (k, v) in options.DefaultTemplateKwargs)
        {
            merged[k] = v?.DeepClone();
        }

        if (kwargs is not null)
        {
            foreach (var (k, v) in kwargs)
            {
                merged[k] = v?.DeepClone();
            }
        }

        return merged;
    }
}
