namespace Qwen3Sharp.Tests.Structured;

/// <summary>Schemas for the property tests: one per keyword, Pydantic v2 output, OpenAI strict-mode examples.</summary>
public static class SchemaCases
{
    public static readonly Dictionary<string, string> All = new()
    {
        ["type-string"] = """{"type":"string","maxLength":12}""",
        ["type-integer"] = """{"type":"integer"}""",
        ["type-number"] = """{"type":"number"}""",
        ["type-boolean"] = """{"type":"boolean"}""",
        ["type-null"] = """{"type":"null"}""",
        ["type-list"] = """{"type":["string","null"],"maxLength":5}""",
        ["enum"] = """{"enum":["red","green",3,null,{"a":[1]}]}""",
        ["const"] = """{"const":{"k":"v","n":[1,2]}}""",
        ["minmax-length"] = """{"type":"string","minLength":2,"maxLength":4}""",
        ["pattern"] = """{"type":"string","pattern":"^[A-Z]{2}-\\d{3}(-[a-z]+)?$"}""",
        ["pattern-unanchored"] = """{"type":"string","pattern":"ab+c","maxLength":0}""".Replace(""","maxLength":0""", ""),
        ["format-date"] = """{"type":"string","format":"date"}""",
        ["format-date-time"] = """{"type":"string","format":"date-time"}""",
        ["format-uuid"] = """{"type":"string","format":"uuid"}""",
        ["format-email"] = """{"type":"string","format":"email"}""",
        ["int-range"] = """{"type":"integer","minimum":-37,"maximum":1204}""",
        ["int-exclusive"] = """{"type":"integer","exclusiveMinimum":5,"exclusiveMaximum":9}""",
        ["int-min-only"] = """{"type":"integer","minimum":100}""",
        ["number-range"] = """{"type":"number","minimum":-2,"maximum":3}""",
        ["array-items"] = """{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":1,"maxItems":4}""",
        ["prefix-items"] = """{"type":"array","prefixItems":[{"type":"string","maxLength":3},{"type":"boolean"}],"items":false,"minItems":1}""",
        ["prefix-then-items"] = """{"type":"array","prefixItems":[{"const":"head"}],"items":{"type":"null"},"maxItems":3}""",
        ["object-required"] = """{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string","maxLength":4},"c":{"type":"boolean"}},"required":["b"],"additionalProperties":false}""",
        ["object-all-optional"] = """{"type":"object","properties":{"x":{"type":"null"},"y":{"type":"boolean"}}}""",
        ["map"] = """{"type":"object","additionalProperties":{"type":"integer","minimum":0,"maximum":5}}""",
        ["anyOf"] = """{"anyOf":[{"type":"integer","minimum":0,"maximum":3},{"type":"string","maxLength":3},{"type":"array","items":{"type":"boolean"},"maxItems":2}]}""",
        ["oneOf"] = """{"oneOf":[{"type":"object","properties":{"kind":{"const":"a"},"v":{"type":"integer"}},"required":["kind","v"],"additionalProperties":false},{"type":"object","properties":{"kind":{"const":"b"}},"required":["kind"],"additionalProperties":false}]}""",
        // Pydantic v2 discriminated union: pet: Cat | Dog = Field(discriminator="pet_type"); oneOf over $refs, exclusive by the const.
        ["oneOf-discriminated"] = """{"$defs":{"Cat":{"properties":{"pet_type":{"const":"cat","title":"Pet Type","type":"string"},"meows":{"title":"Meows","type":"integer","minimum":0,"maximum":9}},"required":["pet_type","meows"],"title":"Cat","type":"object"},"Dog":{"properties":{"pet_type":{"const":"dog","title":"Pet Type","type":"string"},"good":{"type":"boolean"}},"required":["pet_type","good"],"title":"Dog","type":"object"}},"properties":{"pet":{"discriminator":{"mapping":{"cat":"#/$defs/Cat","dog":"#/$defs/Dog"},"propertyName":"pet_type"},"oneOf":[{"$ref":"#/$defs/Cat"},{"$ref":"#/$defs/Dog"}],"title":"Pet"}},"required":["pet"],"title":"Model","type":"object"}""",
        ["oneOf-types"] = """{"oneOf":[{"type":"string","maxLength":4},{"type":"integer","minimum":0,"maximum":99},{"enum":[true,null]}]}""",
        ["any"] = """{}""",
        ["recursive-ref"] = """{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{"v":{"type":"integer","minimum":0,"maximum":99},"children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["v"],"additionalProperties":false}}}""",
        ["definitions"] = """{"type":"object","properties":{"p":{"$ref":"#/definitions/pt"}},"required":["p"],"definitions":{"pt":{"type":"array","prefixItems":[{"type":"number"},{"type":"number"}],"items":false,"minItems":2}}}""",
        // Pydantic v2: class Address(BaseModel): street: str; zip: Optional[str] = None
        //              class User(BaseModel): name: str; age: int; email: Optional[str] = None; tags: list[str] = []; address: Address | None = None; role: Role
        ["pydantic-user"] = """
            {"$defs":{"Address":{"properties":{"street":{"maxLength":20,"title":"Street","type":"string"},"zip":{"anyOf":[{"pattern":"^\\d{5}$","type":"string"},{"type":"null"}],"default":null,"title":"Zip"}},"required":["street"],"title":"Address","type":"object"},
                      "Role":{"enum":["admin","user","guest"],"title":"Role","type":"string"}},
             "properties":{"name":{"title":"Name","type":"string","maxLength":16},"age":{"title":"Age","type":"integer","minimum":0,"maximum":150},
                           "email":{"anyOf":[{"format":"email","type":"string"},{"type":"null"}],"default":null,"title":"Email"},
                           "tags":{"default":[],"items":{"type":"string","maxLength":8},"title":"Tags","type":"array","maxItems":3},
                           "address":{"anyOf":[{"$ref":"#/$defs/Address"},{"type":"null"}],"default":null},
                           "role":{"$ref":"#/$defs/Role"}},
             "required":["name","age","role"],"title":"User","type":"object"}
            """,
        // OpenAI strict-mode docs: structured-outputs "math reasoning" and "UI generation" (recursive) examples.
        ["openai-math"] = """
            {"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"explanation":{"type":"string","maxLength":30},"output":{"type":"string","maxLength":10}},"required":["explanation","output"],"additionalProperties":false},"maxItems":3},"final_answer":{"type":"string","maxLength":10}},"required":["steps","final_answer"],"additionalProperties":false}
            """,
        ["openai-ui"] = """
            {"type":"object","properties":{"type":{"type":"string","enum":["div","button","header","section","field","form"]},"label":{"type":"string","maxLength":10},"children":{"type":"array","items":{"$ref":"#"},"maxItems":2},"attributes":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string","maxLength":8},"value":{"type":"string","maxLength":8}},"required":["name","value"],"additionalProperties":false},"maxItems":2}},"required":["type","label","children","attributes"],"additionalProperties":false}
            """,
        ["openai-nullable-union"] = """
            {"type":"object","properties":{"location":{"type":"string","maxLength":10},"unit":{"type":["string","null"],"enum":["F","C",null]}},"required":["location","unit"],"additionalProperties":false}
            """,
    };

    public static IEnumerable<object[]> Names() => All.Keys.Select(k => new object[] { k });
}
