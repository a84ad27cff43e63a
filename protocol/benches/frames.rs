//! Parse and encode throughput for SEND frames with 4 headers and 100 B, 1 KiB and 64 KiB
//! bodies, and the shared MESSAGE encoding for 1,000 subscribers.
//!
//! Run: `cargo bench -p herald-protocol --bench frames`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use herald_protocol::{
    Command, Decoded, Decoder, Frame, Headers, MessageTemplate, ParseOptions, Parsed, Version,
    encode, encode_to_bytes, parse,
};

const BODY_SIZES: [(&str, usize); 3] = [("100B", 100), ("1KiB", 1024), ("64KiB", 64 * 1024)];
/// Frames per buffer in the decoder benchmark, so per-batch setup is amortised.
const FRAMES_PER_BATCH: usize = 64;

fn send_frame(body_len: usize) -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/topic/prices.eu.IBM")
        .header("content-type", "application/json")
        .header("receipt", "r-1234")
        .header("x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736")
        .body(Bytes::from(vec![b'x'; body_len]))
}

fn bench_parse(c: &mut Criterion) {
    let options = ParseOptions::default();
    let mut group = c.benchmark_group("parse");
    for (name, size) in BODY_SIZES {
        let wire = encode_to_bytes(&send_frame(size), Version::V1_2);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("slice/{name}"), |b| {
            b.iter(|| match parse(black_box(&wire), &options) {
                Ok(Parsed::Frame(frame)) => frame,
                other => panic!("unexpected {other:?}"),
            })
        });

        let mut batch = BytesMut::new();
        for _ in 0..FRAMES_PER_BATCH {
            batch.extend_from_slice(&wire);
        }
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(format!("decoder_x{FRAMES_PER_BATCH}/{name}"), |b| {
            b.iter_batched(
                || batch.clone(),
                |mut buf| {
                    let mut decoder = Decoder::new(options);
                    let mut frames = 0;
                    while let Some(Decoded::Frame(frame)) = decoder.decode(&mut buf).unwrap() {
                        black_box(frame);
                        frames += 1;
                    }
                    assert_eq!(frames, FRAMES_PER_BATCH);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, size) in BODY_SIZES {
        let frame = send_frame(size);
        let len = encode_to_bytes(&frame, Version::V1_2).len();
        group.throughput(Throughput::Bytes(len as u64));
        let mut out = BytesMut::with_capacity(len * 2);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(&frame), Version::V1_2, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_shared_message(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 1000;
    let mut group = c.benchmark_group("message_1000_subscribers");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let headers: Headers = [
        ("content-type", "application/json"),
        ("x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ]
    .into_iter()
    .collect();
    let body = vec![b'x'; 100];
    let ids: Vec<String> = (0..SUBSCRIBERS).map(|i| format!("sub-{i}")).collect();

    // One template per publish; every subscriber uses the stompjs id `sub-0`: shared buffer.
    group.bench_function("same_subscription_id", |b| {
        b.iter(|| {
            let template = MessageTemplate::new(
                Version::V1_2,
                "/topic/prices.eu.IBM",
                "m-1",
                &headers,
                &body,
            );
            for _ in 0..SUBSCRIBERS {
                black_box(template.render("sub-0", None));
            }
        })
    });
    // Every subscriber has its own id: the shared parts are copied around a spliced header.
    group.bench_function("distinct_subscription_ids", |b| {
        b.iter(|| {
            let template = MessageTemplate::new(
                Version::V1_2,
                "/topic/prices.eu.IBM",
                "m-1",
                &headers,
                &body,
            );
            for id in &ids {
                black_box(template.render(id, None));
            }
        })
    });
    // Baseline: encoding a whole MESSAGE frame per subscriber.
    group.bench_function("encode_per_subscriber", |b| {
        b.iter(|| {
            for id in &ids {
                let mut frame = Frame::new(Command::Message)
                    .header("destination", "/topic/prices.eu.IBM")
                    .header("message-id", "m-1")
                    .header("subscription", id)
                    .body(Bytes::copy_from_slice(&body));
                for (n, v) in headers.iter() {
                    frame.headers.push(n, v);
                }
                black_box(encode_to_bytes(&frame, Version::V1_2));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse, bench_encode, bench_shared_message);
criterion_main!(benches);
