using System.Runtime.Intrinsics;
using Xunit.Abstractions;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// Run the kernel tests once per ISA: default, DOTNET_EnableAVX512=0, DOTNET_EnableAVX2=0 and
/// DOTNET_EnableHWIntrinsic=0. This test proves the switch reached the runtime, so each run really takes the
/// narrower dispatch path (the explicit-width tests cover every width in every run as well).
/// </summary>
public sealed class IsaTests(ITestOutputHelper output)
{
    [Fact]
    public void Dispatch_IsaEnvironmentSwitch_DisablesTheWiderVectors()
    {
        output.WriteLine($"Vector512 {Vector512.IsHardwareAccelerated}, Vector256 {Vector256.IsHardwareAccelerated}, " +
            $"Vector128 {Vector128.IsHardwareAccelerated}");
        if (Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") == "0")
        {
            Assert.False(Vector128.IsHardwareAccelerated);
        }

        if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX2") == "0")
        {
            Assert.False(Vector256.IsHardwareAccelerated);
        }

        if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX512") == "0" || !Vector256.IsHardwareAccelerated)
        {
            Assert.False(Vector512.IsHardwareAccelerated);
        }
    }
}
