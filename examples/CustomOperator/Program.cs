// A forward operator of your own: two projections of the image (the sums of its rows and of its columns, a
// two-angle tomography), checked for adjointness and then used to sample the posterior with the MNIST model.
using PosteriorGpu;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

string repo = args.Length > 0 ? args[0] : ".";
using var device = GpuDevice.Open();
using var model = DiffusionModel.Load(device, Path.Combine(repo, "models/mnist-unet"));
float[] digit = Npy.Read(Path.Combine(repo, "data/mnist-test-digits.npy")).ToFloat32()[..model.ImageLength];

using var projections = new RowAndColumnSums(device, 32, 32);
OperatorChecks.CheckAdjoint(projections, device);   // throws if AdjointItem is not the adjoint of ForwardItem
Console.WriteLine($"adjoint test passed: gap {OperatorChecks.AdjointGap(projections, device):E1}");

// The 32 x 32 image preset (24 network calls a sample); the defaults (about a thousand) are sized for exactness.
var sampler = new PosteriorSampler(model, projections, 0.1f, AnnealedLangevinOptions.Image32);
float[] y = sampler.Measure(digit, seed: 2);
float[][] samples = sampler.Sample(y, count: 4, seed: 2);
double error = Math.Sqrt(Enumerable.Range(0, digit.Length).Average(i => Math.Pow(samples.Average(s => s[i]) - digit[i], 2)));
double residual = Math.Sqrt(projections.ForwardReference(samples[0]).Select((v, i) => Math.Pow(v - y[i], 2)).Sum()) / 0.1;
Console.WriteLine($"64 measurements of 1024 pixels: posterior-mean RMSE {error:F3}; a sample's residual ||A x - y|| / sigma_y {residual:F1} " +
                  $"(sqrt(64) = 8 for the truth, on average)");

/// <summary>y = (row sums, column sums) of a [1, H, W] image; the adjoint spreads each sum back along its line.</summary>
sealed class RowAndColumnSums(GpuDevice device, int h, int w) : HostLinearOperator(device, "row-and-column-sums", [1, h, w], [h + w])
{
    protected override void ForwardItem(ReadOnlySpan<float> x, Span<float> y)
    {
        y.Clear();
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) { y[i] += x[i * w + j]; y[h + j] += x[i * w + j]; }
    }

    protected override void AdjointItem(ReadOnlySpan<float> y, Span<float> x)
    {
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) x[i * w + j] = y[i] + y[h + j];
    }
}
