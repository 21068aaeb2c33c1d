return await Qwen3Sharp.Cli.Qwen3Cli.InvokeAsync(args);
