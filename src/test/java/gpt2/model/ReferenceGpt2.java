package gpt2.model;

import gpt2.backend.Dropout;

/**
 * An independent double-precision GPT-2 forward pass, straight loops over plain arrays, for
 * checking the backend's loss and (by finite differences) its gradients. It shares with the
 * code under test only the parameter layout (the file format) and the dropout mask function
 * (which defines which elements drop), not any arithmetic.
 */
final class ReferenceGpt2 {

    private final GptConfig c;
    private final ParameterLayout layout;

    ReferenceGpt2(GptConfig config) {
        this.c = config;
        this.layout = ParameterLayout.of(config);
    }

    /** Mean cross-entropy over positions with target != -1; passKey < 0 means no dropout. */
    double loss(double[] p, int[] inputs, int[] targets, int B, int T, long passKey) {
        int C = c.channels(), NH = c.numHeads(), hs = C / NH, V = c.vocabSize();
        boolean drop = passKey >= 0 && c.dropout() > 0;
        int N = B * T;
        double[] x = new double[N * C];
        TensorSpec wte = layout.wte(), wpe = layout.wpe();
        for (int bt = 0; bt < N; bt++) {
            int t = bt % T;
            for (int i = 0; i < C; i++) {
                x[bt * C + i] = p[(int) wte.offset() + inputs[bt] * C + i] + (wpe == null ? 0 : p[(int) wpe.offset() + t * C + i]);
            }
        }
        if (drop) applyDropout(x, passKey, -1, Gpt2.SITE_EMBED);
        for (int l = 0; l < c.numLayers(); l++) {
            ParameterLayout.Layer w = layout.layer(l);
            double[] h = norm(p, x, w.ln1w(), w.ln1b(), N, C);
            double[] qkv = linear(p, h, w.qkvw(), w.qkvb(), N, C, 3 * C);
            if (c.qkNorm() || c.rope()) {
                qkv = gpt2.backend.cpu.ModernOpsTest.qkNormRope(qkv, B, T, C, NH, 0, c.rope() ? c.ropeTheta() : 0, c.qkNorm(),
                        c.normEps());
            }
            double[] y = new double[N * C];
            Dropout attDrop = drop ? new Dropout(c.dropout(), Dropout.siteKey(passKey, l, Gpt2.SITE_ATTN_WEIGHTS)) : null;
            for (int b = 0; b < B; b++) {
                for (int head = 0; head < NH; head++) {
                    for (int t = 0; t < T; t++) {
                        double[] s = new double[t + 1];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int u = 0; u <= t; u++) {
                            double dot = 0;
                            for (int i = 0; i < hs; i++) {
                                dot += qkv[(b * T + t) * 3 * C + head * hs + i] * qkv[(b * T + u) * 3 * C + C + head * hs + i];
                            }
                            s[u] = dot / Math.sqrt(hs);
                            max = Math.max(max, s[u]);
                        }
                        double sum = 0;
                        for (int u = 0; u <= t; u++) {
                            s[u] = Math.exp(s[u] - max);
                            sum += s[u];
                        }
                        for (int u = 0; u <= t; u++) {
                            double a = s[u] / sum;
                            if (attDrop != null) a *= attDrop.scale((((long) b * NH + head) * T + t) * T + u);
                            for (int i = 0; i < hs; i++) {
                                y[(b * T + t) * C + head * hs + i] += a * qkv[(b * T + u) * 3 * C + 2 * C + head * hs + i];
                            }
                        }
                    }
                }
            }
            double[] ap = linear(p, y, w.attprojw(), w.attprojb(), N, C, C);
            if (drop) applyDropout(ap, passKey, l, Gpt2.SITE_ATTN_RESID);
            for (int i = 0; i < x.length; i++) x[i] += ap[i];
            double[] h2 = norm(p, x, w.ln2w(), w.ln2b(), N, C);
            double[] f = linear(p, h2, w.fcw(), w.fcb(), N, C, 4 * C);
            for (int i = 0; i < f.length; i++) {
                double v = f[i];
                f[i] = c.activation() == GptConfig.Activation.RELU2 ? Math.max(v, 0) * Math.max(v, 0)
                        : 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            }
            double[] fp = linear(p, f, w.fcprojw(), w.fcprojb(), N, 4 * C, C);
            if (drop) applyDropout(fp, passKey, l, Gpt2.SITE_MLP_RESID);
            for (int i = 0; i < x.length; i++) x[i] += fp[i];
        }
        double[] xf = norm(p, x, layout.lnfw(), layout.lnfb(), N, C);
        // logits over the real vocabulary only: padded rows do not exist for the reference
        double total = 0;
        int count = 0;
        int head = (int) layout.lmHead().offset();
        for (int n = 0; n < N; n++) {
            if (targets[n] == -1) continue;
            double[] logits = new double[V];
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < V; v++) {
                double dot = 0;
                for (int i = 0; i < C; i++) dot += xf[n * C + i] * p[head + v * C + i];
                if (c.logitSoftcap() > 0) dot = c.logitSoftcap() * Math.tanh(dot / c.logitSoftcap());
                logits[v] = dot;
                max = Math.max(max, dot);
            }
            double sum = 0;
            for (int v = 0; v < V; v++) sum += Math.exp(logits[v] - max);
            total += Math.log(sum) + max - logits[targets[n]];
            count++;
        }
        return count == 0 ? 0 : total / count;
    }

    private void applyDropout(double[] a, long passKey, int layer, int site) {
        Dropout d = new Dropout(c.dropout(), Dropout.siteKey(passKey, layer, site));
        for (int i = 0; i < a.length; i++) a[i] *= d.scale(i);
    }

    private double[] norm(double[] p, double[] x, TensorSpec w, TensorSpec b, int N, int C) {
        double[] out = new double[N * C];
        for (int n = 0; n < N; n++) {
            if (c.norm() == GptConfig.NormType.LAYERNORM) {
                double mean = 0, var = 0;
                for (int i = 0; i < C; i++) mean += x[n * C + i];
                mean /= C;
                for (int i = 0; i < C; i++) var += (x[n * C + i] - mean) * (x[n * C + i] - mean);
                var /= C;
                double r = 1 / Math.sqrt(var + c.normEps());
                for (int i = 0; i < C; i++) {
                    out[n * C + i] = (x[n * C + i] - mean) * r * p[(int) w.offset() + i] + p[(int) b.offset() + i];
                }
            } else {
                double ms = 0;
                for (int i = 0; i < C; i++) ms += x[n * C + i] * x[n * C + i];
                double r = 1 / Math.sqrt(ms / C + c.normEps());
                for (int i = 0; i < C; i++) out[n * C + i] = x[n * C + i] * r * (w == null ? 1 : 1 + p[(int) w.offset() + i]);
            }
        }
        return out;
    }

    private static double[] linear(double[] p, double[] x, TensorSpec w, TensorSpec b, int N, int C, int OC) {
        double[] out = new double[N * OC];
        for (int n = 0; n < N; n++) {
            for (int o = 0; o < OC; o++) {
                double s = b == null ? 0 : p[(int) b.offset() + o];
                for (int i = 0; i < C; i++) s += x[n * C + i] * p[(int) w.offset() + o * C + i];
                out[n * OC + o] = s;
            }
        }
        return out;
    }
}
