//! `oras-agent`: push and pull ORAS artifacts, and the init / launch / sidecar roles of
//! oras-operator pods. See `agent/README.md`.

use oras_agent::{
    cli, init, launch, layout, logging, maintenance, provenance, prune, reference, registry, share,
    sidecar, transfer,
};

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

use cli::{Cli, Command, LineageFormat};
use oras_contract::agent_args::MemoizeKey;
use reference::ArtifactRef;
use registry::RetryPolicy;
use share::ShareDir;
use transfer::{Connection, PushSource};

fn connection(plain_http: bool) -> Connection {
    Connection {
        plain_http,
        retry: RetryPolicy::from_env(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("annotation {pair:?} is not KEY=VALUE"),
        })
        .collect()
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Push(args) => {
            let reference = ArtifactRef::parse(&args.reference)?;
            let annotations = parse_annotations(&args.annotations)?;
            let sources = args
                .paths
                .iter()
                .map(|path| {
                    let title = layout::title_for(path).with_context(|| {
                        format!("cannot name {} in the artifact", path.display())
                    })?;
                    Ok(PushSource {
                        path: path.clone(),
                        title,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let pushed = runtime()?.block_on(transfer::push(
                &reference,
                &sources,
                annotations,
                format_of(args.image),
                &connection(args.transport.plain_http),
            ))?;
            println!("{}", pushed.digest);
        }
        Command::Pull(args) => {
            let reference = ArtifactRef::parse(&args.reference)?;
            let pulled = runtime()?.block_on(transfer::pull(
                &reference,
                &args.output,
                !args.no_unpack,
                &connection(args.transport.plain_http),
            ))?;
            for path in &pulled.placed {
                println!("{}", args.output.join(path).display());
            }
            println!("{}", pulled.digest);
        }
        Command::Tags(args) => {
            let reference = ArtifactRef::parse_repository(&args.repository)?;
            let tags = runtime()?.block_on(transfer::tags(
                &reference,
                &connection(args.transport.plain_http),
            ))?;
            for tag in tags {
                println!("{tag}");
            }
        }
        Command::Prune(args) => {
            let target = prune::Target::parse(&args.target)?;
            let policy = prune::policy::RetentionPolicy {
                keep_last: args.keep_last,
                max_age: args.max_age,
                protect: args.protect.into_iter().collect(),
            };
            let report = runtime()?.block_on(prune::run(
                &target,
                &policy,
                args.dry_run,
                &connection(args.transport.plain_http),
            ))?;
            for line in &report.lines {
                println!("{line}");
            }
            println!(
                "{} {} manifests ({} tags) and {} referrers; {} bytes of layers no longer have a tag{}",
                if args.dry_run {
                    "would delete"
                } else {
                    "deleted"
                },
                report.manifests,
                report.tags,
                report.referrers,
                report.untagged_bytes,
                if args.dry_run || report.untagged_bytes == 0 {
                    ""
                } else {
                    " (the registry's garbage collector frees them)"
                }
            );
            if let Some(file) = &args.report {
                let summary = report.summary(args.dry_run).to_json();
                std::fs::write(file, summary + "\n")
                    .with_context(|| format!("cannot write the report {}", file.display()))?;
            }
        }
        Command::Collect(args) => {
            let summary = runtime()?.block_on(maintenance::client::collect(&args.url))?;
            let count =
                |n: Option<u64>| n.map_or("an unknown number of".to_string(), |n| n.to_string());
            println!(
                "collected {} blobs and {} manifests; {} bytes freed; pushes refused for {} ms",
                count(summary.blobs_deleted),
                count(summary.manifests_deleted),
                count(summary.bytes_freed),
                summary.read_only_millis
            );
            if let Some(file) = &args.report {
                std::fs::write(file, summary.to_json() + "\n")
                    .with_context(|| format!("cannot write the report {}", file.display()))?;
            }
        }
        Command::ServeRegistry(args) => {
            let code = maintenance::supervisor::run(maintenance::supervisor::Options {
                program: args.registry,
                config: args.config,
                probe: args.probe,
                maintenance: args.maintenance,
                grace: std::time::Duration::from_secs(args.grace),
            })?;
            return Ok(ExitCode::from(code));
        }
        Command::Install(args) => {
            let dest = args.dir.join("oras-agent");
            init::install_self(&dest)?;
            println!("{}", dest.display());
        }
        Command::Lineage(args) => {
            ArtifactRef::parse(&args.reference)?;
            let connection = connection(args.transport.plain_http);
            let graph = runtime()?.block_on(provenance::lineage::build(&args.reference, |text| {
                let connection = connection.clone();
                async move {
                    let reference = ArtifactRef::parse(&text).map_err(|e| e.to_string())?;
                    transfer::manifest_of(&reference, &connection)
                        .await
                        .map(|(digest, manifest)| provenance::lineage::Fetched {
                            digest,
                            annotations: manifest.annotations,
                        })
                        .map_err(|e| format!("{e:#}"))
                }
            }));
            if let Some(reason) = &graph.nodes[graph.root].missing {
                bail!("cannot read {}: {reason}", args.reference);
            }
            print!(
                "{}",
                match args.format {
                    LineageFormat::Tree => graph.to_tree(),
                    LineageFormat::Dot => graph.to_dot(),
                    LineageFormat::Json => graph.to_json(),
                }
            );
        }
        Command::Init(args) => {
            let inputs = args
                .inputs
                .iter()
                .map(|text| ArtifactRef::parse(text))
                .collect::<Result<Vec<_>, _>>()?;
            tracing::debug!(share = %args.share.display(), ?inputs, unpack = !args.no_unpack, plain_http = args.transport.plain_http, "init");
            let memoize = match (args.memoize, args.output, args.image, args.command_digest) {
                (true, Some(output), Some(image), Some(command_digest)) => Some(MemoizeKey {
                    output,
                    image,
                    command_digest,
                }),
                _ => None,
            };
            runtime()?.block_on(init::run(init::InitOptions {
                share: ShareDir::new(args.share),
                inputs,
                unpack: !args.no_unpack,
                memoize,
                connection: connection(args.transport.plain_http),
            }))?;
        }
        Command::Launch(args) => {
            tracing::debug!(?args, "launch");
            let code = launch::run(launch::LaunchOptions {
                share: ShareDir::new(args.share),
                input_path: args.input_path,
                output_path: args.output_path,
                output_pipe: args.output_pipe,
                push_on_failure: args.push_on_failure,
                wait_push: args.wait_push,
                command: args.command,
            });
            return Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)));
        }
        Command::Sidecar(args) => {
            let output = ArtifactRef::parse(&args.output)?;
            tracing::debug!(?args, "sidecar");
            sidecar::run(sidecar::SidecarOptions {
                share: ShareDir::new(args.share),
                output,
                image: args.image,
                command_digest: args.command_digest,
                push_on_failure: args.push_on_failure,
                format: format_of(args.image_format),
                connection: connection(args.transport.plain_http),
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn format_of(image: bool) -> layout::Format {
    if image {
        layout::Format::Image
    } else {
        layout::Format::Oras
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let audience = if cli.command.is_pod_role() {
        logging::Audience::Pod
    } else {
        logging::Audience::User
    };
    logging::init(audience, cli.command.debug());
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a TLS crypto provider was already installed");
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            match audience {
                logging::Audience::Pod => tracing::error!("{err:#}"),
                logging::Audience::User => eprintln!("{}", logging::error_line(&err)),
            }
            ExitCode::FAILURE
        }
    }
}
