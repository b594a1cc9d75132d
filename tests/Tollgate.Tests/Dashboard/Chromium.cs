using Microsoft.Playwright;

namespace Tollgate.Tests.Dashboard;

/// <summary>
/// One headless Debian Chromium for the dashboard's browser tests, driven by Playwright's driver from its
/// NuGet package. Playwright's own browser download does not work here, so it launches /usr/bin/chromium
/// (installed by .ci/run); without it the tests fail with a message, never skip: CI always has it.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    /// <summary>Debian's chromium; <c>TOLLGATE_CHROMIUM</c> may point elsewhere on a developer's machine.</summary>
    public static string ExecutablePath => Environment.GetEnvironmentVariable("TOLLGATE_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException(
                $"Chromium was not found at {ExecutablePath}. The dashboard's browser tests need Debian's chromium package: apt-get install chromium (.ci/run installs it).");
        }

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
        });
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }

    /// <summary>
    /// Saves a full-page screenshot to <c>artifacts/screenshots/</c> at the repository root (git-ignored)
    /// and writes its path to the test output.
    /// </summary>
    public static async Task<string> ScreenshotAsync(IPage page, string name)
    {
        var directory = Path.Combine(RepositoryRoot(), "artifacts", "screenshots");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        TestContext.Current.TestOutputHelper?.WriteLine($"Screenshot: {path}");
        return path;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Tollgate.slnx")))
            {
                return directory.FullName;
            }
        }

        return AppContext.BaseDirectory;
    }
}
