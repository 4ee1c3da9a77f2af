use super::proto::{Event, event, summary};
use super::*;

/// The records of an event file, each checked against its checksums.
pub(crate) fn read_events(path: &Path) -> Vec<Event> {
    let bytes = std::fs::read(path).expect("the event file is readable");
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let length = &bytes[at..at + 8];
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(crc, masked_crc(length), "the length's checksum");
        let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
        let data = &bytes[at + 12..at + 12 + n];
        let crc = u32::from_le_bytes(bytes[at + 12 + n..at + 16 + n].try_into().unwrap());
        assert_eq!(crc, masked_crc(data), "the event's checksum");
        events.push(Event::decode(data).expect("an Event"));
        at += 16 + n;
    }
    events
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-tb-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

#[test]
fn crc32c_is_the_castagnoli_checksum_masked() {
    // The CRC-32C check value of "123456789" is 0xE3069283.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(
        masked_crc(b"123456789"),
        0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
    );
    assert_eq!(masked_crc(b""), 0xa282_ead8);
}

#[test]
fn an_event_file_starts_with_its_version_and_holds_each_summary() {
    let dir = temp_dir("events");
    let mut w = EventWriter::create(&dir.join("train")).unwrap();
    w.scalar("epoch/loss", 3, 0.25).unwrap();
    w.histogram("weights/w", 1, &[1.0, 2.0, 2.0, f32::NAN, 4.0])
        .unwrap();
    w.text("health", 2, "**dead** units").unwrap();
    w.flush().unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let events = read_events(w.path());
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[0].what,
        Some(event::What::FileVersion("brain.Event:2".into()))
    );
    let value = |e: &Event| match &e.what {
        Some(event::What::Summary(s)) => s.value[0].clone(),
        other => panic!("not a summary: {other:?}"),
    };
    let scalar = value(&events[1]);
    assert_eq!((scalar.tag.as_str(), events[1].step), ("epoch/loss", 3));
    assert_eq!(scalar.value, Some(summary::value::Value::SimpleValue(0.25)));
    let Some(summary::value::Value::Histo(h)) = value(&events[2]).value else {
        panic!("not a histogram")
    };
    assert_eq!((h.min, h.max, h.num, h.sum), (1.0, 4.0, 4.0, 9.0));
    assert_eq!(h.bucket.iter().sum::<f64>(), 4.0);
    assert_eq!(h.bucket_limit.len(), h.bucket.len());
    assert_eq!(*h.bucket_limit.last().unwrap(), 4.0);
    // 1 lies in the first bucket, 4 in the last, the two 2s in the bucket whose limit is 2.
    assert_eq!((h.bucket[0], *h.bucket.last().unwrap()), (1.0, 1.0));
    let two = h.bucket_limit.iter().position(|&l| l >= 2.0).unwrap();
    assert_eq!(h.bucket[two], 2.0);
    let text = value(&events[3]);
    assert_eq!(
        text.metadata.unwrap().plugin_data.unwrap().plugin_name,
        "text"
    );
    let Some(summary::value::Value::Tensor(t)) = text.value else {
        panic!("not a tensor")
    };
    assert_eq!(t.string_val, vec![b"**dead** units".to_vec()]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_histogram_of_equal_values_has_one_bucket() {
    let h = histogram(&[0.5; 7]);
    assert_eq!((h.bucket_limit, h.bucket), (vec![0.5], vec![7.0]));
    assert_eq!(histogram(&[f32::NAN]).num, 0.0);
}
