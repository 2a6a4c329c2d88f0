// The self-consuming loop's runtime settings (loop_options) and their checks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ouro/cluster/knn_graph.hpp"
#include "ouro/cluster/ssc_omp.hpp"
#include "ouro/core/error.hpp"
#include "ouro/diffusion/trainer.hpp"
#include "ouro/latent/latents.hpp"
#include "ouro/metrics/precision_recall.hpp"
#include "ouro/probe/softmax_probe.hpp"

namespace ouro::loop {

enum class latent_conditioning { null_class, own_label };

inline const char* to_string(latent_conditioning c) { return c == latent_conditioning::null_class ? "null" : "own"; }

// How an unconditional run labels D_r for its probe (the paper's SSC-OMP, or a k-NN graph).
// Measured on 2,000 held-out MNIST digits (docs/LATENTS.md §2, 3 seeds): SSC-OMP on z-scored
// latents 0.155 clustering accuracy (one cluster of 75-86% of the points), the k-NN graph's
// spectral clustering of whitened PCA-20 features, centred and scaled to unit rows, 0.656. Our
// choice of default: knn_spectral; ssc_omp is the paper's method, kept to compare.
enum class label_clustering { knn_spectral, ssc_omp };

inline const char* to_string(label_clustering c) { return c == label_clustering::knn_spectral ? "knn_spectral" : "ssc_omp"; }

struct clustering_options {
    label_clustering method = label_clustering::knn_spectral;
    // knn_spectral's features: PCA of the real latents to min(pca_dims, D) directions (whitened),
    // centred and scaled to unit length; then the k-NN affinity (10 neighbours, either) and
    // spectral clustering into as many clusters as the data have classes.
    std::int64_t pca_dims = 20;
    bool whiten = true;
    cluster::knn_spectral_options knn{};
    cluster::ssc_omp_clustering_options ssc_omp{};  // on per-dimension z-scores of the latents
};

// Runtime settings. Defaults are the paper's where it states them (Cai et al., §5: K = 5
// generations, N = 1,000 training items per generation, 3 fine-tuning epochs, 10,000 evaluation
// samples); the rest are ours.
struct loop_options {
    std::int64_t generations = 5;                // K
    std::int64_t budget = 1000;                  // N, the training-set size of the budgeted methods
    std::int64_t samples_per_generation = 1000;  // |S_k|, added to the pool each generation
    std::int64_t finetune_epochs = 3;            // E
    bool retrain_from_scratch = false;           // G_k from fresh weights instead of G_{k-1}
    std::int64_t eval_samples = 10000;           // samples of G_k the metrics are computed on
    std::int64_t sample_chunk = 250;             // samples per sampler call (memory; not the results)
    // Run only these methods (names as in metrics.csv, e.g. {"ACU-LSF"}); empty: all of them.
    // Seeds do not depend on the selection, so a method's rows are the same whether it runs alone
    // or with the others: ablations of one method need not pay for the rest.
    std::vector<std::string> only_methods;

    // G0's training (steps or epochs, batch, lr, EMA; checkpoint_dir is set by the loop) and the
    // fine-tuning recipe (batch, lr, warmup_steps; its length is finetune_epochs; no checkpoints).
    diffusion::trainer_options g0{};
    diffusion::trainer_options finetune{};
    // Fine-tuning keeps an EMA of the weights (finetune.ema) and G_k is its average, as G0 is G0's
    // average. Off by default (each G_k is the last iterate of a fresh AdamW): the paper does not
    // say, and the REAL control arm measures what the choice does.
    bool finetune_ema = false;
    // The warm-up of the EMA recipe (finetune_ema, and the ema_recipe_arm control arms): with ~94
    // steps per fine-tuning (N = 1,000, batch 32, 3 epochs) 20 steps, and the EMA's own warm-up
    // (decay (1 + n) / (10 + n), capped at ema.max_decay) averages roughly the last ten steps.
    std::int64_t ema_recipe_warmup_steps = 20;

    latent::latent_options latents{};  // extraction timestep t, noise draws R
    // The label a class-conditional G0 is given when its latents are read. ξ(x, y) = p(y | h_t(x))
    // is to judge the image (Cai et al. §4): given the item's own label, the encoder writes that
    // label into h and the probe reads it back (held-out accuracy 1.0 on MNIST and Fashion-MNIST in
    // our quick runs), so ξ says little about the image. null_class reads the unconditional path
    // that classifier-free guidance trains (needs g0.label_drop > 0); own_label is kept to compare.
    latent_conditioning latent_label = latent_conditioning::null_class;
    probe::fit_options probe{.holdout_fraction = 0.1};
    clustering_options clustering{};  // unconditional models: where the probe's labels of D_r come from
    metrics::prdc_options prdc{};
    std::int64_t fid_bootstrap_replicates = 200;  // FID's percentile interval over the evaluation samples; 0: none
    std::int64_t sample_ole_count = 1000;         // evaluation samples whose G0 latents give the sample OLE; 0: none
    std::int64_t kid_subsets = 100, kid_subset_size = 1000;  // subset size capped by both sets' sizes

    std::uint64_t seed = 1;
    std::filesystem::path out;  // the run directory
    bool write_grids = true;    // PNG grids of samples (images only)
    // Samples become 8-bit images before anything uses them (clamped to [-1, 1] and rounded to
    // the 256 levels of a PNG), as they are when a pipeline saves its samples and retrains on the
    // files. false for data that are not images (the toy world's points).
    bool samples_as_images = true;
    std::ostream* log = nullptr;                             // progress lines; nullptr: std::cerr
    bool show_progress = true;                               // the trainers' progress bars / log lines
    nlohmann::json extra_config = nlohmann::json::object();  // what the caller adds to config.json
};

inline void validate(const loop_options& o) {
    require(o.generations >= 1, "self_consuming: generations must be >= 1, found ", o.generations);
    require(o.budget >= 1, "self_consuming: budget N must be >= 1, found ", o.budget);
    require(o.samples_per_generation >= 1, "self_consuming: samples_per_generation must be >= 1, found ",
            o.samples_per_generation);
    require(o.finetune_epochs >= 1, "self_consuming: finetune_epochs must be >= 1, found ", o.finetune_epochs);
    require(o.eval_samples >= 8, "self_consuming: eval_samples must be >= 8 (precision/recall need neighbours), found ",
            o.eval_samples);
    require(o.sample_chunk >= 1, "self_consuming: sample_chunk must be >= 1, found ", o.sample_chunk);
    require(!o.out.empty(), "self_consuming: set options.out, the run directory");
    require(o.sample_ole_count == 0 || o.sample_ole_count >= 2,
            "self_consuming: sample_ole_count must be 0 (none) or >= 2, found ", o.sample_ole_count);
    require(o.ema_recipe_warmup_steps >= 0, "self_consuming: ema_recipe_warmup_steps must be >= 0, found ",
            o.ema_recipe_warmup_steps);
    require(o.fid_bootstrap_replicates == 0 || o.fid_bootstrap_replicates >= 10,
            "self_consuming: fid_bootstrap_replicates must be 0 (none) or >= 10, found ", o.fid_bootstrap_replicates);
    require(o.kid_subsets >= 0 && o.kid_subset_size >= 2,
            "self_consuming: expected kid_subsets >= 0 and kid_subset_size >= 2, found ", o.kid_subsets, " and ",
            o.kid_subset_size);
    require(o.clustering.pca_dims >= 1, "self_consuming: expected clustering.pca_dims >= 1, found ",
            o.clustering.pca_dims);
    require(o.clustering.knn.graph.neighbours >= 1, "self_consuming: expected clustering.knn.graph.neighbours >= 1, found ",
            o.clustering.knn.graph.neighbours);
}

}  // namespace ouro::loop
