using System.Globalization;
using System.Text.RegularExpressions;

namespace Qwen3Sharp.Tests.Server;

/// <summary>One sample line: metric name, labels, value.</summary>
internal sealed record PromSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string? Label(string name) => Labels.TryGetValue(name, out string? v) ? v : null;
}

/// <summary>A metric family: # TYPE and # HELP, and its samples (for a histogram: _bucket, _count, _sum).</summary>
internal sealed record PromFamily(string Name, string Type, string Help, List<PromSample> Samples);

/// <summary>
/// A strict parser of the Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats,
/// the rules of Go's expfmt.TextParser): metric and label names by their grammar, label values with their three
/// escapes, Go float syntax (+Inf, -Inf, NaN), # TYPE before a family's samples and at most once, a family's
/// samples together, histogram samples only _bucket (with le), _count and _sum, no duplicate series. NuGet has no
/// text-format parser (prometheus-net and OpenTelemetry's exporter only write it), so the tests carry this one;
/// tools/smoke/metrics_check.py runs the official Python client's parser against a live server as well.
/// </summary>
internal static partial class PrometheusText
{
    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    public static Dictionary<string, PromFamily> Parse(string text)
    {
        var families = new Dictionary<string, PromFamily>(StringComparer.Ordinal);
        var seenSeries = new HashSet<string>(StringComparer.Ordinal);
        var closed = new HashSet<string>(StringComparer.Ordinal);
        PromFamily? current = null;
        string[] lines = text.Split('\n');
        if (lines[^1].Length != 0)
        {
            throw new FormatException("The exposition must end with a line feed.");
        }

        for (int n = 0; n < lines.Length - 1; n++)
        {
            string line = lines[n];
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith('#'))
            {
                string[] parts = line.Split(' ', 4);
                if (parts.Length >= 3 && (parts[1] == "TYPE" || parts[1] == "HELP"))
                {
                    string name = parts[2];
                    Require(MetricName().IsMatch(name), n, $"bad metric name '{name}'");
                    if (current is not null && current.Name != name)
                    {
                        closed.Add(current.Name);
                    }

                    Require(!closed.Contains(name), n, $"family {name} is not contiguous");
                    if (!families.TryGetValue(name, out current))
                    {
                        current = new PromFamily(name, "untyped", "", []);
                        families[name] = current;
                    }

                    if (parts[1] == "TYPE")
                    {
                        Require(parts.Length == 4 && parts[3] is "counter" or "gauge" or "histogram" or "summary" or "untyped", n, "bad TYPE");
                        Require(current.Samples.Count == 0, n, "TYPE after samples");
                        families[name] = current = current with { Type = parts[3] };
                    }
                    else
                    {
                        families[name] = current = current with { Help = parts.Length == 4 ? parts[3] : "" };
                    }
                }

                continue;
            }

            PromSample s = ParseSample(line, n);
            string family = FamilyOf(s.Name, families);
            Require(current is not null && current.Name == family, n, $"sample {s.Name} outside its family's block");
            Require(!closed.Contains(family), n, $"family {family} is not contiguous");
            if (current!.Type == "histogram")
            {
                string suffix = s.Name[family.Length..];
                Require(suffix is "_bucket" or "_count" or "_sum", n, $"histogram sample {s.Name}");
                Require(suffix != "_bucket" || s.Labels.ContainsKey("le"), n, "bucket without le");
            }
            else if (current.Type is "counter" or "gauge")
            {
                Require(s.Name == family, n, $"sample {s.Name} in {current.Type} {family}");
            }

            string series = s.Name + "{" + string.Join(",", s.Labels.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value)) + "}";
            Require(seenSeries.Add(series), n, $"duplicate series {series}");
            current.Samples.Add(s);
        }

        return families;
    }

    private static string FamilyOf(string sampleName, Dictionary<string, PromFamily> families)
    {
        foreach (string suffix in new[] { "_bucket", "_count", "_sum" })
        {
            if (sampleName.EndsWith(suffix, StringComparison.Ordinal)
                && families.TryGetValue(sampleName[..^suffix.Length], out PromFamily? f) && f.Type is "histogram" or "summary")
            {
                return f.Name;
            }
        }

        return sampleName;
    }

    private static PromSample ParseSample(string line, int n)
    {
        int i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ')
        {
            i++;
        }

        string name = line[..i];
        Require(MetricName().IsMatch(name), n, $"bad metric name '{name}'");
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                int eq = line.IndexOf('=', i);
                Require(eq > i, n, "label without '='");
                string label = line[i..eq];
                Require(LabelName().IsMatch(label) && !label.StartsWith("__", StringComparison.Ordinal), n, $"bad label name '{label}'");
                i = eq + 1;
                Require(line[i] == '"', n, "label value not quoted");
                i++;
                var value = new System.Text.StringBuilder();
                while (line[i] != '"')
                {
                    if (line[i] == '\\')
                    {
                        i++;
                        value.Append(line[i] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw new FormatException($"line {n + 1}: bad escape \\{line[i]}"),
                        });
                    }
                    else
                    {
                        value.Append(line[i]);
                    }

                    i++;
                }

                i++;
                Require(labels.TryAdd(label, value.ToString()), n, $"label {label} twice");
                if (line[i] == ',')
                {
                    i++;
                }
                else
                {
                    Require(line[i] == '}', n, "expected ',' or '}'");
                }
            }

            i++;
        }

        Require(i < line.Length && line[i] == ' ', n, "expected a space before the value");
        string[] rest = line[(i + 1)..].Split(' ');
        Require(rest.Length is 1 or 2, n, "expected a value and an optional timestamp");
        double v = rest[0] switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.TryParse(rest[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && !rest[0].Contains(',')
                ? d : throw new FormatException($"line {n + 1}: bad value '{rest[0]}'"),
        };
        return new PromSample(name, labels, v);
    }

    private static void Require(bool condition, int line, string message)
    {
        if (!condition)
        {
            throw new FormatException($"line {line + 1}: {message}");
        }
    }
}
