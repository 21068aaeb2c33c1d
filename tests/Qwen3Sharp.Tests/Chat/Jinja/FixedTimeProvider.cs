namespace Qwen3Sharp.Tests.Chat.Jinja;

/// <summary>The instant the fixture generators use for <c>strftime_now</c> (2026-03-07 14:05:09, UTC zone).</summary>
internal sealed class FixedTimeProvider : TimeProvider
{
    public static readonly FixedTimeProvider Instance = new();

    public override DateTimeOffset GetUtcNow() => new(2026, 3, 7, 14, 5, 9, TimeSpan.Zero);

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
