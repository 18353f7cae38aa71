//! Several outputs from one config: SPI (stand-in) and bit-banged strips,
//! each record decoded back to exactly its slice of each row.

use crate::util::*;
use rowplay::output::chip::{ChipKind, ChipSettings, Encoder};
use rowplay::output::decode::decode;
use rowplay::output::gpio::decode_clocked;
use rowplay::output::record::parse_records;
use rowplay::output::ALL_OFF;

const CONFIG: &str = r#"
[[output]]
kind = "spi"
chip = "apa102"
bus = 0
cs = 0
first = 0
count = 8
[[output]]
kind = "spi"
chip = "sk9822"
bus = 0
cs = 1
first = 4
count = 8
reverse = true
[[output]]
kind = "gpio-clocked"
chip = "ws2801"
data_pin = 5
clock_pin = 6
hz = 4000000
first = 2
count = 6
"#;

fn play(dir: &std::path::Path, config: &str, extra: &[&str]) -> std::process::Output {
    let p = pack(dir, vec![named("a", 1, 10, 12)], 8);
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut args = vec![
        "play".to_string(),
        p.display().to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--gamma".into(),
        "1".into(),
        "--frames".into(),
        "12".into(),
        "--rt-priority".into(),
        "0".into(),
        "--socket".into(),
        dir.join("s.sock").display().to_string(),
        "--spi-stand-in".into(),
        dir.display().to_string(),
        "--gpio-stand-in".into(),
        dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    rowplay(&refs)
}

#[test]
fn three_outputs_each_record_their_slice_of_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    let o = play(
        dir.path(),
        CONFIG,
        &["--stats-json", stats.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let outs = st["outputs"].as_array().unwrap();
    // The first output is written by the frame loop, the others by a
    // worker thread each.
    let workers: Vec<bool> = outs
        .iter()
        .map(|o| o["worker"].as_bool().unwrap())
        .collect();
    assert_eq!(workers, [false, true, true]);
    let a = named("a", 1, 10, 12);
    let data = &a.array.data;
    let px = |row: u32, led: usize| -> [u8; 3] {
        if led >= 12 {
            return [0; 3];
        }
        let o = (row as usize * 12 + led) * 3;
        [data[o], data[o + 1], data[o + 2]]
    };
    let cases: [(&str, ChipKind, usize, usize, bool, bool); 3] = [
        ("spidev0.0.wire", ChipKind::Apa102, 0, 8, false, false),
        ("spidev0.1.wire", ChipKind::Sk9822, 4, 8, true, false),
        ("gpio5-6.edges", ChipKind::Ws2801, 2, 6, false, true),
    ];
    for (i, (file, chip, first, count, reverse, edges)) in cases.into_iter().enumerate() {
        let recs = parse_records(&std::fs::read(dir.path().join(file)).unwrap()).unwrap();
        // A worker that was still busy when the next frame came dropped the
        // frame waiting for it (counted); every other frame is recorded.
        let dropped = outs[i]["dropped"].as_u64().unwrap();
        assert_eq!(
            recs.len() as u64 + dropped,
            14,
            "{file}: blank + 12 frames + final blank"
        );
        assert!(i > 0 || dropped == 0, "the first output drops nothing");
        assert_eq!(
            recs.last().map(|r| r.meta.array),
            Some(ALL_OFF),
            "{file}: the final blank is written"
        );
        let enc = Encoder::new(ChipSettings::new(chip), count);
        for r in &recs {
            let wire = if edges {
                decode_clocked(&r.bytes, 5, 6)
            } else {
                r.bytes.clone()
            };
            let got = decode(&enc, &wire).unwrap_or_else(|e| panic!("{file}: {e}"));
            let want: Vec<u8> = (0..count)
                .flat_map(|i| {
                    let led = first + if reverse { count - 1 - i } else { i };
                    if r.meta.array == ALL_OFF {
                        [0; 3]
                    } else {
                        px(r.meta.row, led)
                    }
                })
                .collect();
            assert_eq!(got, want, "{file} row {}", r.meta.row);
        }
    }
}

#[test]
fn gpio_pins_follow_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        "[[output]]\nkind = \"gpio\"\npins = [5, 6, 13]\nthreshold = 100\nrecord = \"LEVELS\"\n";
    let levels = dir.path().join("levels");
    let cfg = cfg.replace("LEVELS", &levels.display().to_string());
    let o = play(dir.path(), &cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = named("a", 1, 10, 12);
    let recs = parse_records(&std::fs::read(&levels).unwrap()).unwrap();
    assert_eq!(recs.len(), 14);
    for r in recs.iter().filter(|r| r.meta.array != ALL_OFF) {
        let o = r.meta.row as usize * 36;
        let want: Vec<u8> = a.array.data[o..o + 3]
            .iter()
            .map(|v| (*v >= 100) as u8)
            .collect();
        assert_eq!(r.bytes, want, "row {}", r.meta.row);
    }
}

#[test]
fn pin_conflicts_unknown_pins_and_a_shared_ws2812_bus_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[output]]\nkind = \"gpio\"\npins = [10]\n[[output]]\nkind = \"spi\"\nchip = \"apa102\"\n",
            "GPIO10 is wanted by SPI0 MOSI but pins of output 1 (gpio) holds it",
        ),
        (
            "[[output]]\nkind = \"gpio\"\npins = [30]\n",
            "GPIO30 (pins of output 1 (gpio)) is not on the header",
        ),
        (
            "[[output]]\nkind = \"spi\"\nchip = \"ws2812\"\n[[output]]\nkind = \"spi\"\nchip = \"apa102\"\ncs = 1\n",
            "shares SPI0 with another strip",
        ),
        (
            "[[output]]\nkind = \"null\"\n[led]\ncount = 3\n",
            "use one of them",
        ),
    ];
    for (cfg, want) in cases {
        let o = play(dir.path(), cfg, &[]);
        assert_clean_error(&o, 1);
        assert!(stderr(&o).contains(want), "{cfg}: {}", stderr(&o));
        assert!(
            !dir.path().join("spidev0.0.wire").exists(),
            "nothing started"
        );
    }
}
