//! Mutations of seed frames: bit flips, interesting bytes, inserted tokens, deleted,
//! duplicated or truncated ranges, and splices of two seeds.

use super::frames::TOKENS;
use super::rng::Rng;

/// Seeds built in: one of every client command, escapes, CRLF, a NUL body, several frames in
/// a row. `--corpus DIR` adds files (e.g. protocol/fuzz/corpus/parse).
pub fn builtin_seeds() -> Vec<Vec<u8>> {
    [
        &b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0"[..],
        b"STOMP\naccept-version:1.0,1.1,1.2\nhost:/\n\n\0",
        b"SEND\ndestination:/topic/fz0\ncontent-type:text/plain\ncontent-length:5\n\nhello\0",
        b"SEND\r\ndestination:/queue/fz0\r\nreceipt:r1\r\n\r\nbody\0",
        b"SEND\ndestination:/topic/fz1\nfz-h:a\\cb\\\\c\\nd\\re\ncontent-length:3\n\na\0b\0",
        b"SUBSCRIBE\nid:s0\ndestination:/topic/fz/**\nack:client-individual\nreceipt:r2\n\n\0",
        b"SUBSCRIBE\nid:s1\ndestination:/user/queue/fz0\n\n\0",
        b"UNSUBSCRIBE\nid:s0\n\n\0",
        b"ACK\nid:s0-1\ntransaction:t0\n\n\0",
        b"NACK\nid:1-1\n\n\0",
        b"BEGIN\ntransaction:t0\n\n\0SEND\ndestination:/queue/fz1\ntransaction:t0\n\nx\0COMMIT\ntransaction:t0\n\n\0",
        b"BEGIN\ntransaction:t1\n\n\0ABORT\ntransaction:t1\n\n\0",
        b"DISCONNECT\nreceipt:bye\n\n\0",
        b"\n\r\n\nSEND\ndestination:/topic/fz.c.x\n\n\0\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Applies one to four mutations to a seed picked from `seeds`.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = rng.choose(seeds).clone();
    for _ in 0..rng.between(1, 4) {
        mutate_once(rng, &mut bytes, seeds);
    }
    bytes
}

fn mutate_once(rng: &mut Rng, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    if bytes.is_empty() {
        let seed: &Vec<u8> = rng.choose(seeds);
        bytes.extend_from_slice(seed);
        return;
    }
    let len = bytes.len();
    match rng.below(8) {
        0 => {
            let at = rng.below(len);
            bytes[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = rng.below(len);
            bytes[at] = rng.pick(&b"\0\n\r:\\\xff\xc6\x80 a"[..]);
        }
        2 => {
            let at = rng.below(len + 1);
            let token = rng.pick(TOKENS);
            bytes.splice(at..at, token.iter().copied());
        }
        3 => {
            let from = rng.below(len);
            let to = (from + rng.between(1, 16)).min(len);
            bytes.drain(from..to);
        }
        4 => {
            let from = rng.below(len);
            let to = (from + rng.between(1, 32)).min(len);
            let copy = bytes[from..to].to_vec();
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, copy);
        }
        5 => bytes.truncate(rng.below(len)),
        6 => {
            // The head of this one, the tail of another.
            let other = rng.choose(seeds);
            let cut = rng.below(len);
            let from = rng.below(other.len().max(1));
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from.min(other.len())..]);
        }
        _ => {
            // A frame repeated: many frames in one write.
            let copy = bytes.clone();
            for _ in 0..rng.between(1, 8) {
                bytes.extend_from_slice(&copy);
            }
        }
    }
}

/// Reads every file of the directories as extra seeds.
pub fn load_corpus(dirs: &[std::path::PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    let mut seeds = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        // Sorted, so the same seed reproduces the same run.
        paths.sort();
        for path in paths {
            seeds.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        }
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_repeat_for_a_seed_and_change_bytes() {
        let seeds = builtin_seeds();
        let a: Vec<Vec<u8>> = (0..50).map(|i| mutate(&mut Rng::new(i), &seeds)).collect();
        let b: Vec<Vec<u8>> = (0..50).map(|i| mutate(&mut Rng::new(i), &seeds)).collect();
        assert_eq!(a, b);
        assert!(a.iter().filter(|m| !seeds.contains(m)).count() > 40);
    }
}
