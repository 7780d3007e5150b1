//! `heinfer`: compile ONNX models for encrypted inference and inspect compiled ones.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

mod aggregate_cmds;
mod batch_cmds;
mod bench;
mod bgv_cmds;
mod client_aided_cmd;
mod client_cmds;
mod container;
mod demo;
mod lwe_cmds;
mod paillier_cmds;
mod prefix_input;
mod public_input;
mod run;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "heinfer", version, about = "Neural-network inference on CKKS-encrypted data")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// How a CKKS query travels (`compile --query`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum QueryForm {
    /// One ciphertext per sample.
    Ciphertext,
    /// One word per input value, packed by the server (`rlwe::packing`).
    Compact,
}

#[derive(Clone, Copy, ValueEnum)]
enum MaxPool {
    /// refuse MaxPool with an explanation
    Refuse,
    /// rewrite MaxPool as AveragePool (the report shows the accuracy cost)
    Avg,
    /// compute it: pairwise max(a, b) = (a + b)/2 + |a − b|/2, |x| a polynomial or a composite sign (costs depth)
    Approx,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Compile an ONNX model into a Triton model directory (config.pbtxt + 1/model.hem) and print its report
    Compile {
        /// the ONNX model
        model: PathBuf,
        /// calibration inputs (.npy, shape [n, ...input shape]): activation ranges
        #[arg(long)]
        calibration: PathBuf,
        /// evaluation inputs for the accuracy report (.npy); default: the calibration data
        #[arg(long)]
        data: Option<PathBuf>,
        /// labels of the evaluation inputs (.npy of integers)
        #[arg(long)]
        labels: Option<PathBuf>,
        /// model repository directory; the model goes to <repo>/<name>/
        #[arg(long, short = 'o', default_value = "model_repository")]
        output: PathBuf,
        /// model name (default: the ONNX file's stem)
        #[arg(long)]
        name: Option<String>,
        /// polynomial degree for every non-square activation (default: smallest meeting --target-agreement)
        #[arg(long)]
        degree: Option<usize>,
        /// share of calibration samples whose top-1 class must agree with the original, with a margin of twice the output error, for the automatic degree
        #[arg(long, default_value_t = 0.999)]
        target_agreement: f64,
        /// largest degree the automatic choice tries
        #[arg(long, default_value_t = 31)]
        max_degree: usize,
        /// widen the seen activation range by this fraction on each side
        #[arg(long, default_value_t = 0.1)]
        margin: f64,
        #[arg(long, value_enum, default_value_t = MaxPool::Approx)]
        maxpool: MaxPool,
        /// log2 of the CKKS scale (default: the largest of 22..30 that fits)
        #[arg(long)]
        scale_bits: Option<u32>,
        /// smallest log2(N) to consider
        #[arg(long, default_value_t = 12)]
        min_log_n: u32,
        /// keep the evaluation keys to upload within this many MB (10^6 bytes, as the report prints):
        /// without --galois-radix, the first of radix 2, 4, 8 and 8 with --one-top-key that fits;
        /// without --degree, a lower activation degree when none fits at the automatic one
        #[arg(long, value_parser = parse_budget)]
        key_budget_mb: Option<f64>,
        /// make rotation keys only for powers of this radix (2, 4 or 8): a step of another size
        /// becomes several rotations. 4 or 8 upload about half or a third of the Galois keys for more
        /// rotations per sum (the report gives keys and latency). Default: 2, or with --key-budget-mb
        /// the first of 2, 4, 8 whose upload fits
        #[arg(long, value_parser = parse_radix)]
        galois_radix: Option<u32>,
        /// sum the first layer's replicas with one Galois key at the top level, where keys cost the
        /// most: rr − 1 rotations there instead of a key per power of two (the report gives both)
        #[arg(long)]
        one_top_key: bool,
        /// make every evaluation key in the parameter set's own digits and special primes (by
        /// default keys for lower levels get their own where that makes them smaller)
        #[arg(long)]
        no_key_bases: bool,
        /// Python with onnxruntime for the reference (default: $HEINFER_PYTHON, then python3)
        #[arg(long)]
        python: Option<PathBuf>,
        /// skip onnxruntime; compare with heinfer's own f64 interpreter of the graph
        #[arg(long)]
        no_onnxruntime: bool,
        /// differentially private outputs, EPS[,DELTA] per query: the outputs are clamped
        /// and the server adds discrete-Gaussian noise (discrete Laplace when DELTA is 0 or absent)
        #[arg(long, value_name = "EPS[,DELTA]")]
        output_dp: Option<String>,
        /// with --output-dp: clamp the outputs to [-C, C] (default: 95th percentile of |output| on the calibration data)
        #[arg(long, value_name = "C", requires = "output_dp")]
        dp_clamp: Option<f64>,
        /// with --output-dp: the ε each key id may spend on this model (basic composition); refused beyond
        #[arg(long, value_name = "EPS", requires = "output_dp")]
        dp_budget: Option<f64>,
        /// zero every slot of the answer outside the output layout (one more level; implied by --output-dp)
        #[arg(long)]
        mask_unused_slots: bool,
        /// circuit privacy: the server masks the unused slots and floods each answer's noise under the
        /// client's public key, so that two models with the same outputs give answers within statistical
        /// distance 2^-LAMBDA (default 40); the bundle then carries the public key. CKKS: refused, with the
        /// largest λ the parameters allow, when the outputs would not keep 1 % precision. BGV (--scheme bgv):
        /// the outputs stay exact, the flood costs modulus only (answers kept at a higher level)
        #[arg(long, value_name = "LAMBDA", num_args = 0..=1, default_missing_value = "40")]
        circuit_privacy: Option<u32>,
        /// with --circuit-privacy: flood with exactly 2^B per coefficient instead of the smallest flood λ
        /// needs (refused if smaller). Compile models that must be indistinguishable from one another with
        /// one value (the largest their reports name): the flood's size is in the client spec
        #[arg(long, value_name = "B", requires = "circuit_privacy")]
        flood_bits: Option<u32>,
        /// input features the client sends in clear (index ranges of the flattened input, e.g. 0-9,15,20-29):
        /// the server computes their share of the first layer and sees their values
        #[arg(long, value_name = "SPEC")]
        public_features: Option<String>,
        /// layouts to emit: auto (every one that fits), L (one sample per request), M (L and B samples
        /// interleaved in one ciphertext), T (L and a batch per request: one ciphertext per input feature,
        /// one sample per slot; linear layers and squares only)
        #[arg(long, default_value = "auto")]
        layout: compiler::LayoutRequest,
        /// samples layout T's parameters are chosen for (its ring holds at least this many per request)
        #[arg(long, default_value_t = 4096)]
        throughput_batch: usize,
        /// split inference: cut the graph at this node (its first output) or tensor; the prefix before it
        /// runs in the clear on the client (it travels in the client spec), only the rest runs encrypted
        #[arg(long, value_name = "NODE")]
        split_at: Option<String>,
        /// where linear layers rotate their products: before-rescale (at the doubled scale: least noise),
        /// after-rescale (one level lower: smaller keys, faster rotations, more noise), or auto (the
        /// smaller key upload; the report gives the other's keys and noise)
        #[arg(long, default_value = "auto")]
        rotations: compiler::RotationPolicy,
        /// how a CKKS query travels: ciphertext (one ciphertext per sample), or compact (one word per
        /// input value, which the server packs into the ciphertext with keys the bundle then adds:
        /// a query of a few KB instead of hundreds, for more upload once and more server time)
        #[arg(long, value_enum, default_value = "ciphertext")]
        query: QueryForm,
        /// with --query compact, where the first linear layer runs: coefficients (on the client's ring
        /// query before the packing, no key; the server packs the layer's outputs), slots (after
        /// packing the inputs, with rotations), or auto (the fewer key switches; the report says which)
        #[arg(long, default_value = "auto")]
        first_layer: compiler::FirstLayer,
        /// how a CKKS answer travels: compact (the ciphertext cut to the subring its outputs repeat in,
        /// when they do, and switched to the smallest modulus that keeps their precision; the report
        /// says how far), full (the ciphertext at the output level), or auto (compact for --query
        /// compact models, full otherwise)
        #[arg(long, default_value = "auto")]
        answer: compiler::AnswerRequest,
        /// client-aided refresh (CKKS): cut the network at its non-linear activations into segments
        /// <NAME>__seg0, __seg1, … (each an ordinary model); the client runs the exact activations in
        /// clear between them and re-encrypts. The client then sees the intermediate activations
        #[arg(long)]
        client_aided: bool,
        /// also write the model's merged twin <NAME>_merged (layout M; Triton): max_batch_size B and
        /// dynamic batching, so that concurrent requests under one key id, each one sample in its own
        /// BLOCK, are added and answered by one evaluation. Clients send [1, n]-shaped tensors there
        #[arg(long)]
        merged: bool,
        /// print the report as JSON
        #[arg(long)]
        json: bool,
        /// encryption scheme: ckks (any network, approximate), paillier (linear models: no evaluation keys,
        /// exact in fixed point), lwe (linear models: a 13.6 KB public key, the smallest queries and answers, approximate
        /// within a stated bound), bgv (exact integers; needs --quantize), or auto (costs each and says why)
        #[arg(long, default_value = "ckks")]
        scheme: compiler::SchemeRequest,
        /// for --scheme bgv: scale weights and inputs to integers of this many bits
        #[arg(long)]
        quantize: Option<u32>,
    },
    /// Encrypted evaluation in this process: keys, encryption, the runtime, decryption, against the simulation
    Run {
        /// a model directory (from `heinfer compile`) or its model.hem
        path: PathBuf,
        /// inputs (.npy, shape [n, ...input shape])
        #[arg(long)]
        input: PathBuf,
        /// labels (.npy of integers), for accuracy
        #[arg(long)]
        labels: Option<PathBuf>,
        /// how many samples (default: all)
        #[arg(long)]
        samples: Option<usize>,
        /// print one JSON summary
        #[arg(long)]
        json: bool,
        /// a Paillier model: use this secret key instead of making one (key generation takes up to a minute)
        #[arg(long)]
        secret_key: Option<PathBuf>,
        /// auto: the cheapest of the model's layouts for the samples held (said on stderr); L (the default: the
        /// check against the simulation): one sample per request; M: B samples in one ciphertext (models
        /// compiled with layout M); T: a batch per request, a ciphertext per feature (models compiled with layout T)
        #[arg(long, default_value = "L")]
        layout: String,
    },
    /// Layouts T and M (a batch per request) over files: keygen, encrypt, evaluate, decrypt (`--layout T|M`)
    #[command(subcommand)]
    Batch(batch_cmds::BatchCmd),
    /// Serve a model repository over KServe v2 (HTTP with binary data, and gRPC), as Triton with the heinfer backend would (what `heinfer-server` runs)
    Serve(server::ServeArgs),
    /// One command end to end: compile a bundled digits CNN, serve it, and infer on encrypted digits over HTTP
    Demo {
        /// how many test digits
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// the bundled model to compile and serve (models/<model>.onnx): digits_cryptonets (conv, x², dense), or digits_cnn (conv, BatchNorm, ReLU, pool, dense; seconds per digit)
        #[arg(long, default_value = "digits_cryptonets")]
        model: String,
        /// print one JSON summary
        #[arg(long)]
        json: bool,
        /// the bundled models directory (default: models/ of the checkout holding the executable)
        #[arg(long)]
        models: Option<PathBuf>,
    },
    /// Make a secret key (a new 0600 file) and the evaluation-key bundle for a model; prints the key id
    Keygen {
        /// a model directory, its model.hem, or a client-spec JSON file
        model: PathBuf,
        /// where to write the secret key (never overwritten)
        #[arg(long)]
        secret_key: PathBuf,
        /// where to write the evaluation-key bundle (sent to the server once)
        #[arg(long)]
        keys_out: PathBuf,
        /// a Paillier model: write the public key of the existing --secret-key again instead of making a key pair
        #[arg(long)]
        reuse_secret_key: bool,
        #[arg(long)]
        json: bool,
    },
    /// Encrypt samples into ciphertext files (one per sample: -o is a file for one sample, else a directory)
    Encrypt {
        /// a model directory, its model.hem, or a client-spec JSON file
        model: PathBuf,
        #[arg(long)]
        secret_key: PathBuf,
        /// inputs (.npy, shape [n, ...input shape])
        #[arg(long)]
        input: PathBuf,
        /// encrypt only the first n samples
        #[arg(long)]
        samples: Option<usize>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Evaluate encrypted queries in this process (the server's step, no network) into result files
    Evaluate {
        /// a model directory or its model.hem
        model: PathBuf,
        /// the evaluation-key bundle from `heinfer keygen`
        #[arg(long)]
        keys: PathBuf,
        /// query files from `heinfer encrypt`
        #[arg(required = true)]
        queries: Vec<PathBuf>,
        /// result file (one query) or directory
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Decrypt result files into the model's outputs (and classes)
    Decrypt {
        /// a model directory, its model.hem, or a client-spec JSON file
        model: PathBuf,
        #[arg(long)]
        secret_key: PathBuf,
        /// result files
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// apply the model's recorded post-processing (softmax, sigmoid, argmax)
        #[arg(long)]
        postprocess: bool,
        /// the outputs leave this machine: decrypt for release (flood:RELEASES:MAX_ERROR[:SECURITY_BITS[:MAX_NOISE]]
        /// or round:BITS) and print the guarantee. Plain decryptions reveal the secret key to whoever also sees the
        /// ciphertexts.
        #[arg(long, value_name = "POLICY")]
        release: Option<String>,
        /// BGV models: decrypt the first n samples of each batch (default: every slot)
        #[arg(long)]
        samples: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Latency breakdown (encrypt, evaluate, decrypt), sizes and server memory of encrypted inference
    Bench {
        /// a model directory or its model.hem
        model: PathBuf,
        /// inputs (.npy); default: pseudo-random values in [0, 1)
        #[arg(long)]
        input: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        samples: usize,
        #[arg(long)]
        json: bool,
    },
    /// Secure aggregation: the committee's key ceremony, contributions, decryption shares, the result
    #[command(subcommand)]
    Aggregate(aggregate_cmds::AggregateCmd),
    /// Print the report of a compiled model (a model.hem file or a model directory)
    Inspect {
        path: PathBuf,
        #[arg(long)]
        json: bool,
        /// print the client spec JSON instead
        #[arg(long)]
        client_spec: bool,
        /// list every HE operation
        #[arg(long)]
        ops: bool,
    },
}

fn spinner() -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

fn load_npy(p: &Path) -> Result<compiler::Array, String> {
    compiler::npy::read(p).map_err(|e| e.to_string())
}

fn find_hem(p: &Path) -> PathBuf {
    if p.is_dir() {
        if p.join("1").join("model.hem").exists() {
            return p.join("1").join("model.hem");
        }
        return p.join("model.hem");
    }
    p.to_path_buf()
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Compile {
            model,
            calibration,
            data,
            labels,
            output,
            name,
            degree,
            target_agreement,
            max_degree,
            margin,
            maxpool,
            scale_bits,
            min_log_n,
            key_budget_mb,
            galois_radix,
            one_top_key,
            no_key_bases,
            python,
            no_onnxruntime,
            output_dp,
            dp_clamp,
            dp_budget,
            mask_unused_slots,
            circuit_privacy,
            flood_bits,
            public_features,
            layout,
            throughput_batch,
            split_at,
            rotations,
            query,
            first_layer,
            answer,
            client_aided,
            merged,
            json,
            scheme,
            quantize,
        } => {
            let output_dp = output_dp
                .map(|s| {
                    compiler::OutputDpRequest::parse(&s).map(|r| compiler::OutputDpRequest {
                        clamp: dp_clamp,
                        budget: dp_budget,
                        ..r
                    })
                })
                .transpose()?;
            let bytes = std::fs::read(&model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
            let cal = load_npy(&calibration).map_err(|e| format!("calibration file: {e}"))?;
            let ev = data.as_deref().map(load_npy).transpose().map_err(|e| format!("data file: {e}"))?;
            let lab = labels.as_deref().map(load_npy).transpose().map_err(|e| format!("labels file: {e}"))?;
            let name = name.unwrap_or_else(|| {
                model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into())
            });
            let opts = compiler::Options {
                name,
                degree,
                target_agreement,
                max_degree,
                margin,
                maxpool: match maxpool {
                    MaxPool::Refuse => compiler::MaxPoolPolicy::Refuse,
                    MaxPool::Avg => compiler::MaxPoolPolicy::Average,
                    MaxPool::Approx => compiler::MaxPoolPolicy::Approximate,
                },
                scale_bits,
                min_log_n,
                key_budget_bytes: key_budget_mb.map(|m| (m * 1e6).round() as usize),
                galois_radix,
                one_top_key,
                key_bases: !no_key_bases,
                python,
                use_onnxruntime: !no_onnxruntime,
                output_dp,
                mask_unused_slots,
                circuit_privacy,
                circuit_privacy_flood_bits: flood_bits,
                public_features,
                layout,
                throughput_batch,
                split_at,
                rotations,
                compact_query: query == QueryForm::Compact,
                first_layer,
                answer,
            };
            let d = compiler::Data { calibration: &cal, eval: ev.as_ref(), labels: lab.as_ref() };
            if client_aided {
                return crate::client_aided_cmd::compile(&bytes, &d, &opts, scheme, quantize.is_some(), &output, json);
            }
            let pb = spinner();
            let res = compiler::compile_with_scheme(&bytes, Some(&model), &d, &opts, scheme, quantize, &|m| {
                pb.set_message(m.to_string())
            });
            pb.finish_and_clear();
            let (c, choice) = res.map_err(|e| e.to_string())?;
            let dir = compiler::write_repository_any(&output, &c, &choice).map_err(|e| e.to_string())?;
            if merged {
                let compiler::CompiledAny::Ckks(ckks) = &c else {
                    return Err("--merged: only CKKS models have layout M, which merged requests run in".into());
                };
                let twin = compiler::write_merged_twin(&output, ckks).map_err(|e| e.to_string())?;
                eprintln!("written: {} (merged twin: one sample per request, in its BLOCK)", twin.display());
            }
            match (&c, json) {
                (compiler::CompiledAny::Ckks(c), true) => {
                    let r = c.model.report.as_ref().expect("compile makes a report");
                    // The report, and beside it which scheme was chosen and why.
                    let mut v = serde_json::to_value(r).map_err(|e| e.to_string())?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("choice".into(), serde_json::to_value(&choice).map_err(|e| e.to_string())?);
                    }
                    println!("{}", serde_json::to_string_pretty(&v).unwrap());
                }
                (compiler::CompiledAny::Paillier(p), true) => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "model": p.model.name, "scheme": p.model.client.scheme, "client_spec": p.model.client,
                        "weight_frac_bits": p.model.weight_frac_bits, "accuracy": p.accuracy,
                        "choice": choice, "report": p.model.report,
                    }))
                    .unwrap()
                ),
                (compiler::CompiledAny::Bgv(b), true) => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "model": b.model.name, "scheme": b.model.client.scheme, "client_spec": b.model.client,
                        "bound": b.model.bound, "levels": b.model.levels, "accuracy": b.accuracy,
                        "choice": choice, "report": b.model.report,
                    }))
                    .unwrap()
                ),
                (_, false) => {
                    print!("{}", c.report_text());
                    println!("written: {}", dir.display());
                }
            }
            Ok(())
        }
        Cmd::Batch(cmd) => batch_cmds::run_cmd(cmd),
        Cmd::Run { path, input, labels, samples, json, secret_key, layout } => {
            let hem = find_hem(&path);
            let held = match samples {
                Some(n) => n,
                None => compiler::npy::read(&input).map(|a| a.rows()).unwrap_or(1),
            };
            match batch_cmds::choose(&hem, &layout, held)? {
                Some((lay, why)) => batch_cmds::run_batch(&hem, lay, &input, labels.as_deref(), samples, json, &why),
                None => run::run(run::RunArgs {
                    hem: &find_hem(&path),
                    input: &input,
                    labels: labels.as_deref(),
                    samples,
                    json,
                    secret_key: secret_key.as_deref(),
                }),
            }
        }
        Cmd::Serve(args) => server::serve(args),
        Cmd::Aggregate(cmd) => aggregate_cmds::run(cmd),
        Cmd::Demo { samples, json, models, model } => demo::demo(demo::DemoArgs { samples, json, models, model }),
        Cmd::Keygen { model, secret_key, keys_out, reuse_secret_key, json } => {
            client_cmds::keygen(&model, &secret_key, &keys_out, reuse_secret_key, json)
        }
        Cmd::Encrypt { model, secret_key, input, samples, output } => {
            client_cmds::encrypt(&model, &secret_key, &input, samples, &output)
        }
        Cmd::Evaluate { model, keys, queries, output } => client_cmds::evaluate(&model, &keys, &queries, &output),
        Cmd::Decrypt { model, secret_key, results, postprocess, release, samples, json } => {
            if let model::AnySpec::Bgv(spec) = client_cmds::load_any_spec(&model)? {
                return bgv_cmds::decrypt(spec, &secret_key, &results, samples, postprocess, json);
            }
            client_cmds::decrypt(&model, &secret_key, &results, postprocess, release.as_deref(), json)
        }
        Cmd::Bench { model, input, samples, json } => {
            bench::bench(bench::BenchArgs { model: &model, input: input.as_deref(), samples, json })
        }
        Cmd::Inspect { path, json, client_spec, ops } => {
            let m = match model::AnyModel::read_file(find_hem(&path)).map_err(|e| e.to_string())? {
                model::AnyModel::Ckks(m) => m,
                model::AnyModel::Bgv(b) => {
                    if client_spec {
                        println!("{}", serde_json::to_string_pretty(&b.client).unwrap());
                    } else if json {
                        println!("{}", serde_json::to_string_pretty(&b).unwrap());
                    } else {
                        print!("{}", b.report);
                    }
                    return Ok(());
                }
                model::AnyModel::Paillier(p) => {
                    if client_spec {
                        println!("{}", serde_json::to_string_pretty(&p.client).unwrap());
                    } else if json {
                        println!("{}", serde_json::to_string_pretty(&p).unwrap());
                    } else {
                        print!("{}", p.report);
                    }
                    return Ok(());
                }
            };
            if client_spec {
                println!("{}", serde_json::to_string_pretty(&m.client).unwrap());
                return Ok(());
            }
            if ops {
                for (i, n) in m.nodes.iter().enumerate() {
                    println!(
                        "%{i} = {:?}  (level {}, scale 2^{:.3}, layer {})",
                        n.op,
                        n.level,
                        n.scale.log2(),
                        n.layer
                    );
                }
            }
            match (&m.report, json) {
                (Some(r), true) => println!("{}", serde_json::to_string_pretty(r).unwrap()),
                (Some(r), false) => print!("{}", r.to_text()),
                (None, _) => println!("{} nodes, no report stored", m.nodes.len()),
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--galois-radix`: 2, 4 or 8.
fn parse_budget(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m > 0.0 && m.is_finite() => Ok(m),
        _ => Err(format!("{s:?}: give a positive number of MB (10^6 bytes)")),
    }
}

fn parse_radix(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(r @ (2 | 4 | 8)) => Ok(r),
        _ => Err(format!("{s:?}: give 2, 4 or 8")),
    }
}
