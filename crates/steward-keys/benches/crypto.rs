//! Cost of the per-request crypto: seal and open of a 512-byte value and one
//! e-mail blind index (each includes rebuilding the ring key, see lib docs).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use steward_keys::{IndexKind, RecordKind, SealContext, SecretKey, TenantKeyring};

fn keyring() -> TenantKeyring {
    TenantKeyring::new(
        "tenant_bench".to_owned(),
        vec![(1, SecretKey::generate().unwrap())],
        SecretKey::generate().unwrap(),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let ring = keyring();
    let ctx = SealContext::new(
        "tenant_bench",
        RecordKind::Visitor,
        "01HZX3J9V6Q8T4W2N5R7Y0K1M3",
        "email",
    );
    let value = vec![0x5Au8; 512];
    let sealed = ring.seal(&ctx, &value).unwrap();

    let mut group = c.benchmark_group("steward_keys");
    group.throughput(Throughput::Bytes(512));
    group.bench_function("seal_512", |b| {
        b.iter(|| ring.seal(black_box(&ctx), black_box(&value)).unwrap())
    });
    group.bench_function("open_512", |b| {
        b.iter(|| ring.open(black_box(&ctx), black_box(&sealed)).unwrap())
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("blind_index_email", |b| {
        b.iter(|| ring.blind_index(IndexKind::Email, black_box("alice@example.com")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
