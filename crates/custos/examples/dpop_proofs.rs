//! Writes DPoP proofs (RFC 9449 §4) for the HTTP benchmark
//! (`bench/run.sh --scenario dpop`): one proof per line, each with its own
//! `jti` and the current `iat`, all for one `htm` and `htu` and signed with
//! one P-256 key (ES256), spread over `--files` files (`PREFIX.0`,
//! `PREFIX.1`, …), one per wrk thread.
//!
//! ```sh
//! cargo run --release -p custos --example dpop_proofs -- \
//!     --htu http://127.0.0.1:8080/token --count 300000 --files 2 \
//!     --key /tmp/dpop.pk8 --out /tmp/proofs
//! ```
//!
//! The key is read from `--key` (PKCS#8 DER), or made and saved there when
//! the file does not exist. Prints the key's RFC 7638 thumbprint (what a
//! bound token's `cnf.jkt` carries) on stdout. Signs on every core.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Args {
    htu: String,
    htm: String,
    count: usize,
    files: usize,
    key: PathBuf,
    out: String,
}

const USAGE: &str =
    "usage: dpop_proofs --htu URL [--htm POST] --count N [--files K] --key FILE --out PREFIX";

fn parse_args() -> Result<Args, String> {
    let mut htu = None;
    let mut htm = "POST".to_owned();
    let mut count = None;
    let mut files = 1;
    let mut key = None;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--htu" => htu = Some(value()?),
            "--htm" => htm = value()?,
            "--count" => count = Some(value()?.parse().map_err(|e| format!("--count: {e}"))?),
            "--files" => files = value()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--key" => key = Some(PathBuf::from(value()?)),
            "--out" => out = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    if files == 0 {
        return Err("--files must be at least 1".to_owned());
    }
    Ok(Args {
        htu: htu.ok_or(USAGE)?,
        htm,
        count: count.ok_or(USAGE)?,
        files,
        key: key.ok_or(USAGE)?,
        out: out.ok_or(USAGE)?,
    })
}

fn load_or_make_key(path: &PathBuf) -> Result<EcdsaKeyPair, String> {
    let pkcs8 = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let document = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| "key generation failed".to_owned())?;
            std::fs::write(path, document.as_ref())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            document.as_ref().to_vec()
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
        .map_err(|_| format!("{}: not a P-256 PKCS#8 key", path.display()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Appends `count` proofs to `buf`, with `jti`s `{run}-{part}-{i}`.
fn write_proofs(
    buf: &mut Vec<u8>,
    key: &EcdsaKeyPair,
    header: &str,
    claims: (&str, &str),
    run: &str,
    part: usize,
    count: usize,
) -> Result<(), String> {
    let rng = SystemRandom::new();
    let (htm, htu) = claims;
    let mut input = String::with_capacity(512);
    for i in 0..count {
        let payload = format!(
            r#"{{"jti":"{run}-{part}-{i}","htm":"{htm}","htu":"{htu}","iat":{}}}"#,
            unix_now()
        );
        input.clear();
        input.push_str(header);
        input.push('.');
        URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut input);
        let signature = key
            .sign(&rng, input.as_bytes())
            .map_err(|_| "signing failed".to_owned())?;
        input.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut input);
        buf.extend_from_slice(input.as_bytes());
        buf.push(b'\n');
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let key = load_or_make_key(&args.key)?;
    let point = key.public_key().as_ref();
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    );
    let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let jkt = URL_SAFE_NO_PAD.encode(digest(&SHA256, jwk.as_bytes()).as_ref());
    let header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#));
    // A random prefix keeps jtis unique across runs with the same key.
    let mut run_id = [0u8; 9];
    SystemRandom::new()
        .fill(&mut run_id)
        .map_err(|_| "random failed".to_owned())?;
    let run_id = URL_SAFE_NO_PAD.encode(run_id);

    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each file's proofs are cut into one part per worker; every worker
    // makes its part of every file.
    let per_file: Vec<usize> = (0..args.files)
        .map(|f| args.count / args.files + usize::from(f < args.count % args.files))
        .collect();
    let parts: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (key, header, run_id, per_file) = (&key, &header, &run_id, &per_file);
                let claims = (args.htm.as_str(), args.htu.as_str());
                scope.spawn(move || -> Result<Vec<Vec<u8>>, String> {
                    let mut out = Vec::with_capacity(per_file.len());
                    for (f, &n) in per_file.iter().enumerate() {
                        let count = n / workers + usize::from(w < n % workers);
                        let mut buf = Vec::with_capacity(count * 500);
                        let part = f * workers + w;
                        write_proofs(&mut buf, key, header, claims, run_id, part, count)?;
                        out.push(buf);
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut by_worker = Vec::with_capacity(workers);
        for handle in handles {
            by_worker.push(handle.join().map_err(|_| "a worker panicked".to_owned())?);
        }
        // Reorder: file-major.
        let mut files = vec![Vec::new(); args.files];
        for worker in by_worker {
            for (f, buf) in worker?.into_iter().enumerate() {
                files[f].extend_from_slice(&buf);
            }
        }
        Ok::<_, String>(files)
    })?;
    for (f, buf) in parts.iter().enumerate() {
        let path = format!("{}.{f}", args.out);
        let mut file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        file.write_all(buf).map_err(|e| format!("{path}: {e}"))?;
    }
    println!("{jkt}");
    eprintln!(
        "dpop_proofs: {} proofs in {} files, {} workers, {:.2} s",
        args.count,
        args.files,
        workers,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dpop_proofs: {message}");
            ExitCode::from(2)
        }
    }
}
