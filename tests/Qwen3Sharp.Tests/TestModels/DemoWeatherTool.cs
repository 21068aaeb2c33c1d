using Microsoft.Extensions.AI;

namespace Qwen3Sharp.Tests.TestModels;

/// <summary>
/// The demo model's get_weather(city) as an application writes it for Microsoft.Extensions.AI's function invocation:
/// records every city it is called with and answers 21°C and sunny (the answer the tool-loop tests expect back).
/// </summary>
internal static class DemoWeatherTool
{
    public static AIFunction Create(List<string> calls) => AIFunctionFactory.Create(
        ([System.ComponentModel.Description("The city name")] string city) =>
        {
            calls.Add(city);
            return $$"""{"city": "{{city}}", "temperature": 21, "condition": "sunny"}""";
        },
        "get_weather", "Get the current weather for a city.");
}
