using System.Text;
using System.Text.Json;

namespace Qwen3Sharp.Chat.Parsing;

/// <summary>Parses the JSON body of one Hermes <c>&lt;tool_call&gt;</c> block. Never throws on model output.</summary>
public static class HermesToolCall
{
    /// <summary>
    /// Accepts <c>{"name": string, "arguments": object|string|null|absent}</c>. An object is returned as its
    /// compact JSON text (insignificant whitespace removed, every string and escape kept exactly as the model
    /// wrote it); a string is returned as is; null or absent becomes <c>{}</c>. Anything else is malformed.
    /// </summary>
    public static bool TryParse(string body, out string name, out string arguments)
    {
        name = "";
        arguments = "";
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            return false;
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("name", out JsonElement nameElement)
                || nameElement.ValueKind != JsonValueKind.String)
            {
                return false;
            }

            string? parsedName = nameElement.GetString();
            if (string.IsNullOrEmpty(parsedName))
            {
                return false;
            }

            if (!root.TryGetProperty("arguments", out JsonElement args) || args.ValueKind == JsonValueKind.Null)
            {
                arguments = "{}";
            }
            else if (args.ValueKind == JsonValueKind.Object)
            {
                arguments = Minify(args.GetRawText());
            }
            else if (args.ValueKind == JsonValueKind.String)
            {
                arguments = args.GetString()!;
            }
            else
            {
                return false;
            }

            name = parsedName;
            return true;
        }
    }

    /// <summary>Removes JSON whitespace outside string literals. Input must be valid JSON.</summary>
    public static string Minify(string json)
    {
        var sb = new StringBuilder(json.Length);
        bool inString = false;
        bool escaped = false;
        foreach (char c in json)
        {
            if (inString)
            {
                sb.Append(c);
                if (escaped)
                {
                    escaped = false;
                }
                else if (c == '\\')
                {
                    escaped = true;
                }
                else if (c == '"')
                {
                    inString = false;
                }
            }
            else if (c is not (' ' or '\t' or '\n' or '\r'))
            {
                sb.Append(c);
                inString = c == '"';
            }
        }

        return sb.ToString();
    }
}
