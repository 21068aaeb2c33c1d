namespace Qwen3Sharp.Tests.Server;

/// <summary>One default server shared by a test class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public ServerHarness Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ServerHarness.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
