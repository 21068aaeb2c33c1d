using System.Text.Json.Nodes;
using Json.Schema;
using Qwen3Sharp.Structured;

namespace Qwen3Sharp.Tests.Structured;

public class JsonSchemaConstraintTests
{
    private const int SamplesPerSchema = 12;

    private static readonly EvaluationOptions Validation = new() { RequireFormatValidation = true, OutputFormat = OutputFormat.List };

    private static bool Valid(string schema, string instance, out string detail)
    {
        JsonNode? node;
        try
        {
            node = ParseLastWins(instance);
        }
        catch (System.Text.Json.JsonException ex)
        {
            detail = "not JSON: " + ex.Message;
            return false;
        }

        EvaluationResults r = JsonSchema.FromText(schema).Evaluate(node, Validation);
        detail = string.Join("; ", r.Details.Where(d => d.HasErrors).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")));
        return r.IsValid;
    }

    /// <summary>
    /// Reads JSON the way Python's json.loads and JavaScript's JSON.parse do: a repeated member name keeps its last value. The
    /// grammar does not forbid repeated names in free-form maps (additionalProperties, json_object) — neither do XGrammar and
    /// llguidance, and RFC 8259 leaves it to the reader; README "Structured output" says so — while JsonNode would throw on them.
    /// </summary>
    private static JsonNode? ParseLastWins(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return Build(doc.RootElement);

        static JsonNode? Build(System.Text.Json.JsonElement e) => e.ValueKind switch
        {
            System.Text.Json.JsonValueKind.Object => BuildObject(e),
            System.Text.Json.JsonValueKind.Array => new JsonArray(e.EnumerateArray().Select(Build).ToArray()),
            _ => JsonNode.Parse(e.GetRawText()),
        };

        static JsonObject BuildObject(System.Text.Json.JsonElement e)
        {
            var o = new JsonObject();
            foreach (System.Text.Json.JsonProperty p in e.EnumerateObject())
            {
                o[p.Name] = Build(p.Value);
            }

            return o;
        }
    }

    /// <summary>Seeds from the name with a hash that is the same in every process (string.GetHashCode is randomised per process).</summary>
    private static int StableSeed(string name)
    {
        uint h = 2166136261;
        foreach (char ch in name)
        {
            h = (h ^ ch) * 16777619;
        }

        return (int)(h & 0xFFFF);
    }

    [Fact]
    public void RepeatedMemberNames_KeepTheLastValue_AsJsonLoadsDoes()
    {
        Assert.True(Valid(SchemaCases.All["map"], """{"a":9,"a":1}""", out _));
        Assert.False(Valid(SchemaCases.All["map"], """{"a":1,"a":9}""", out _));
    }

    [Theory, MemberData(nameof(SchemaCases.Names), MemberType = typeof(SchemaCases))]
    public void Sampled_HighTemperatureOutputs_AllValidate(string name)
    {
        string schema = SchemaCases.All[name];
        if (name == "pattern-unanchored")
        {
            return;   // random text almost never contains the pattern, so samples do not end; force-fed below
        }

        GNode root = StructuredKit.Schema(schema);
        var rng = new Random(StableSeed(name));
        int complete = 0;
        for (int i = 0; i < SamplesPerSchema; i++)
        {
            string? output = StructuredKit.Sample(root, rng);
            if (output is null)
            {
                continue;
            }

            complete++;
            Assert.True(Valid(schema, output, out string why), $"{name}: sample {i} does not validate: {output}\n{why}");
        }

        Assert.True(complete >= SamplesPerSchema * 3 / 4, $"{name}: only {complete} of {SamplesPerSchema} samples ended");
    }

    public static TheoryData<string, string, bool> Instances() => new()
    {
        { "type-list", "null", true },
        { "oneOf-discriminated", "{\"pet\": {\"pet_type\": \"dog\", \"good\": true}}", true },
        { "oneOf-discriminated", "{\"pet\": {\"pet_type\": \"dog\", \"meows\": 3}}", false },
        { "oneOf-types", "\"abc\"", true },
        { "oneOf-types", "3.5", false },
        { "type-list", "\"abcde\"", true },
        { "type-list", "\"abcdef\"", false },
        { "type-list", "3", false },
        { "enum", "{\"a\":[1]}", true },
        { "enum", "\"blue\"", false },
        { "const", "{\"k\":\"v\",\"n\":[1,2]}", true },
        { "const", "{\"k\":\"v\"}", false },
        { "minmax-length", "\"é\\n\"", true },
        { "minmax-length", "\"a\"", false },
        { "pattern", "\"AB-123-xyz\"", true },
        { "pattern", "\"AB-12\"", false },
        { "pattern-unanchored", "\"xxabbbcyy\"", true },
        { "pattern-unanchored", "\"acb\"", false },
        { "format-date", "\"2024-02-29\"", true },
        { "format-date", "\"2024-13-01\"", false },
        { "format-date-time", "\"2024-02-29T23:59:07.5+05:30\"", true },
        { "format-date-time", "\"2024-02-29 23:59:07\"", false },
        { "format-uuid", "\"123e4567-e89b-12d3-a456-426614174000\"", true },
        { "format-uuid", "\"123e4567e89b12d3a456426614174000\"", false },
        { "format-email", "\"first.last@example.co.uk\"", true },
        { "format-email", "\"no-at-sign.example.com\"", false },
        { "int-range", "-37", true },
        { "int-range", "1204", true },
        { "int-range", "1205", false },
        { "int-range", "-38", false },
        { "int-range", "007", false },
        { "int-exclusive", "6", true },
        { "int-exclusive", "9", false },
        { "int-min-only", "99", false },
        { "int-min-only", "123456", true },
        { "number-range", "2.999", true },
        { "number-range", "-1.5", true },
        { "number-range", "3.5", false },
        { "number-range", "-2.5", false },
        { "array-items", "[ 1, 2,3 ]", true },
        { "array-items", "[]", false },
        { "array-items", "[1,2,3,4,5]", false },
        { "prefix-items", "[\"ab\", true]", true },
        { "prefix-items", "[\"ab\", true, 1]", false },
        { "object-required", "{\"a\": 1, \"b\": \"x\"}", true },
        { "object-required", "{\"b\":\"x\",\"c\":false}", true },
        { "object-required", "{\"a\": 1}", false },
        { "object-required", "{\"b\":\"x\",\"d\":1}", false },
        { "object-all-optional", "{}", true },
        { "object-all-optional", "{ \"y\": true }", true },
        { "map", "{\"q\": 5, \"r\": 0}", true },
        { "map", "{\"q\": 6}", false },
        { "recursive-ref", "{\"v\":1,\"children\":[{\"v\":2,\"children\":[]},{\"v\":3}]}", true },
        { "recursive-ref", "{\"v\":1,\"children\":[{\"children\":[]}]}", false },
        { "pydantic-user", "{\"name\":\"Ann\",\"age\":33,\"email\":null,\"tags\":[\"x\"],\"address\":{\"street\":\"Main\",\"zip\":\"12345\"},\"role\":\"admin\"}", true },
        { "pydantic-user", "{\"name\":\"Ann\",\"age\":33,\"role\":\"root\"}", false },
        { "openai-ui", "{\"type\":\"form\",\"label\":\"f\",\"children\":[{\"type\":\"button\",\"label\":\"ok\",\"children\":[],\"attributes\":[]}],\"attributes\":[{\"name\":\"id\",\"value\":\"x\"}]}", true },
        { "openai-ui", "{\"type\":\"span\",\"label\":\"f\",\"children\":[],\"attributes\":[]}", false },
        { "any", "{\"deep\": [1, {\"x\": null}, \"s\", -0.5e3, true]}", true },
        { "any", "{\"a\": }", false },
    };

    [Theory, MemberData(nameof(Instances))]
    public void ForceFed_Instance_AcceptedExactlyWhenValid(string name, string instance, bool valid)
    {
        string schema = SchemaCases.All[name];
        Assert.Equal(valid, Valid(schema, instance, out _));   // the independent validator agrees with the table
        Assert.Equal(valid, StructuredKit.Accepts(StructuredKit.Schema(schema), instance));
    }

    [Theory]
    [InlineData("""{"type":"object","not":{}}""", "not")]
    [InlineData("""{"type":"array","uniqueItems":true}""", "uniqueItems")]
    [InlineData("""{"type":"string","format":"ipv4"}""", "ipv4")]
    [InlineData("""{"type":"number","multipleOf":3}""", "multipleOf")]
    public void Strict_UnenforceableKeyword_IsRefusedByName(string schema, string keyword)
    {
        var ex = Assert.Throws<SchemaException>(() => JsonSchemaCompiler.Compile(JsonNode.Parse(schema), strict: true, out _));
        Assert.Contains(keyword, ex.Message);
        JsonSchemaCompiler.Compile(JsonNode.Parse(schema), strict: false, out List<string> notEnforced);
        Assert.Contains(notEnforced, n => n.Contains(keyword, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("oneOf", true)]
    [InlineData("oneOf-discriminated", true)]
    [InlineData("oneOf-types", true)]
    [InlineData("""{"oneOf":[{"type":"integer"},{"type":"number"}]}""", false)]
    [InlineData("""{"oneOf":[{"const":1},{"const":1.0}]}""", false)]
    [InlineData("""{"oneOf":[{"const":"a"},{"type":"string"}]}""", false)]
    [InlineData("""{"oneOf":[{"const":3},{"type":"string"},{"enum":["x",false]}]}""", false)]
    [InlineData("""{"oneOf":[{"const":3},{"type":["string","null"]},{"enum":[false]}]}""", true)]
    [InlineData("""{"oneOf":[{"properties":{"a":{"type":"null"}}},{"type":"string"}]}""", false)]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"k":{"enum":["a","b"]}},"required":["k"]},{"type":"object","properties":{"k":{"const":"b"}},"required":["k"]}]}""", false)]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"k":{"const":"a"}}},{"type":"object","properties":{"k":{"const":"b"}},"required":["k"]}]}""", false)]
    public void OneOf_IsExclusiveExactlyWhenItsBranchesAreProvablyDisjoint(string schemaOrCase, bool exclusive)
    {
        string schema = SchemaCases.All.GetValueOrDefault(schemaOrCase, schemaOrCase);
        JsonSchemaCompiler.Compile(JsonNode.Parse(schema), strict: false, out List<string> notEnforced);
        Assert.Equal(!exclusive, notEnforced.Any(n => n.Contains("oneOf", StringComparison.Ordinal)));
        if (exclusive)
        {
            JsonSchemaCompiler.Compile(JsonNode.Parse(schema), strict: true, out _);
        }
        else
        {
            // strict: exclusivity that cannot be enforced is refused, naming the keyword (a 400 at the server)
            var ex = Assert.Throws<SchemaException>(() => JsonSchemaCompiler.Compile(JsonNode.Parse(schema), strict: true, out _));
            Assert.Contains("'oneOf' cannot be enforced", ex.Message);
        }
    }

    [Theory]
    [InlineData("""{"$ref":"#/$defs/missing"}""", "#/$defs/missing")]
    [InlineData("""{"type":"string","minLength":5,"maxLength":2}""", "minLength")]
    [InlineData("""{"type":"integer","minimum":5,"maximum":2}""", "minimum")]
    [InlineData("""{"type":"object","properties":{},"required":["a"],"additionalProperties":false}""", "required")]
    [InlineData("""{"type":"strin"}""", "strin")]
    [InlineData("""{"enum":[]}""", "enum")]
    public void BadSchema_IsRefusedNamingTheProblem(string schema, string named)
    {
        var ex = Assert.Throws<SchemaException>(() => JsonSchemaCompiler.Compile(JsonNode.Parse(schema), strict: false, out _));
        Assert.Contains(named, ex.Message);
    }

    [Fact]
    public void Regex_RawText_MatchesOnlyTheLanguage()
    {
        GNode re = RegexCompiler.Compile(@"^(yes|no|\d{2,3}[a-zé]?)$", jsonString: false);
        Assert.True(StructuredKit.Accepts(re, "yes"));
        Assert.True(StructuredKit.Accepts(re, "123é"));
        Assert.False(StructuredKit.Accepts(re, "1"));
        Assert.False(StructuredKit.Accepts(re, "maybe"));
    }

    [Fact]
    public void Mask_RepeatedState_IsCachedAndAllocationFree()
    {
        TokenConstraint c = StructuredKit.Constraint(StructuredKit.Schema("""{"type":"array","items":{"type":"integer","minimum":0,"maximum":9}}"""));
        var logits = new float[StructuredKit.VocabSize];
        int[] open = StructuredKit.Tokenizer.Encode("[1");
        int comma = StructuredKit.Tokenizer.Encode(",")[0];
        int one = StructuredKit.Tokenizer.Encode("1")[0];
        foreach (int id in open)
        {
            c.Mask(logits);
            c.Accept(id);
        }

        for (int i = 0; i < 4; i++)   // warm: ",1" leads back to the same state
        {
            c.Mask(logits);
            c.Accept(comma);
            c.Mask(logits);
            c.Accept(one);
        }

        Assert.Equal(0, Allocations.Fewest(() =>
        {
            for (int i = 0; i < 64; i++)
            {
                c.Mask(logits);
                c.Accept(comma);
                c.Mask(logits);
                c.Accept(one);
            }
        }));
    }
}
