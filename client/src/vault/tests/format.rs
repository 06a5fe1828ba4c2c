//! Pure layout checks: record sizes, segment sizes, transaction and slot encodings.

use passage_crypto::primitives::Secret32;

use crate::vault::format::*;
use crate::vault::segment::{SEGMENT_MIN_LEN, SEGMENT_STEP_LEN, segment_len_for};

#[test]
fn record_lengths_are_powers_of_two_within_limits() {
    assert_eq!(record_len_for(0), Some(RECORD_ALIGN));
    assert_eq!(
        record_len_for(RECORD_ALIGN - RECORD_OVERHEAD),
        Some(RECORD_ALIGN)
    );
    assert_eq!(
        record_len_for(RECORD_ALIGN - RECORD_OVERHEAD + 1),
        Some(2 * RECORD_ALIGN)
    );
    assert_eq!(record_len_for(MAX_TRANSACTION_LEN), Some(MAX_RECORD_LEN));
    assert_eq!(record_len_for(MAX_TRANSACTION_LEN + 1), None);
    assert!(is_record_len(RECORD_ALIGN) && is_record_len(MAX_RECORD_LEN));
    assert!(!is_record_len(RECORD_ALIGN / 2) && !is_record_len(2 * MAX_RECORD_LEN));
    assert!(!is_record_len(RECORD_ALIGN + 1));
}

#[test]
fn segment_sizes_double_then_step() {
    assert_eq!(segment_len_for(0), SEGMENT_MIN_LEN);
    assert_eq!(segment_len_for(SEGMENT_MIN_LEN), SEGMENT_MIN_LEN);
    assert_eq!(segment_len_for(SEGMENT_MIN_LEN + 1), 2 * SEGMENT_MIN_LEN);
    assert_eq!(segment_len_for(SEGMENT_STEP_LEN), SEGMENT_STEP_LEN);
    assert_eq!(segment_len_for(SEGMENT_STEP_LEN + 1), 2 * SEGMENT_STEP_LEN);
    assert_eq!(
        segment_len_for(5 * SEGMENT_STEP_LEN - 3),
        5 * SEGMENT_STEP_LEN
    );
}

#[test]
fn transactions_round_trip_and_refuse_garbage() {
    let ops = [Op::Put(b"a", b"1"), Op::Delete(b"bb"), Op::Put(b"", b"")];
    let encoded = encode_ops(ops.iter().copied()).unwrap();
    assert_eq!(
        encoded.len(),
        4 + op_len(1, Some(1)) + op_len(2, None) + op_len(0, Some(0))
    );
    let decoded = decode_ops(&encoded).unwrap();
    assert_eq!(decoded.len(), 3);
    assert!(matches!(decoded[0], Op::Put(b"a", b"1")));
    assert!(matches!(decoded[1], Op::Delete(b"bb")));
    // Trailing bytes, a truncation, an unknown op: refused.
    let mut longer = encoded.to_vec();
    longer.push(0);
    assert!(decode_ops(&longer).is_err());
    assert!(decode_ops(&encoded[..encoded.len() - 1]).is_err());
    assert!(decode_ops(&[0, 0, 0, 1, 9]).is_err());
}

#[test]
fn records_open_only_at_their_offset_with_their_keys() {
    let keys = SegmentKeys::derive(
        &Secret32::from_bytes([1; 32]),
        &Secret32::from_bytes([2; 32]),
        0,
    );
    let record = seal_record(&keys, 512, b"content", &[3; 24]).unwrap();
    assert_eq!(record.len(), RECORD_ALIGN);
    assert_eq!(
        open_record_header(&keys, 512, &record[..RECORD_HEADER_LEN]),
        Some(RECORD_ALIGN)
    );
    assert_eq!(
        open_record_body(&keys, 512, &record).unwrap().as_slice(),
        b"content"
    );
    // Moved to another offset, or under another segment's keys: refused.
    assert_eq!(
        open_record_header(&keys, 768, &record[..RECORD_HEADER_LEN]),
        None
    );
    assert_eq!(
        open_record_body(&keys, 768, &record).unwrap_err(),
        BodyError::Unauthentic
    );
    for other in [
        SegmentKeys::derive(
            &Secret32::from_bytes([1; 32]),
            &Secret32::from_bytes([2; 32]),
            1,
        ),
        SegmentKeys::derive(
            &Secret32::from_bytes([1; 32]),
            &Secret32::from_bytes([9; 32]),
            0,
        ),
    ] {
        assert_eq!(
            open_record_header(&other, 512, &record[..RECORD_HEADER_LEN]),
            None
        );
    }
}

#[test]
fn slot_payload_round_trips_and_checks_padding() {
    let payload = SlotPayload {
        generation: 7,
        profile_id: [4; PROFILE_ID_LEN],
        data_key: Secret32::from_bytes([5; 32]),
        epoch: 9,
        segment_secret: Secret32::from_bytes([6; 32]),
        linked_kek: None,
    };
    let encoded = payload.encode(&[8; 32]);
    assert_eq!(encoded.len(), SLOT_PLAINTEXT_LEN);
    let decoded = SlotPayload::decode(&encoded).unwrap();
    assert_eq!((decoded.generation, decoded.epoch), (7, 9));
    // An absent link is sealed as the filler (random in use), and reads back as a key.
    assert!(
        decoded
            .linked_kek
            .as_ref()
            .unwrap()
            .ct_eq(&Secret32::from_bytes([8; 32]))
    );
    assert!(decoded.data_key.ct_eq(&payload.data_key));
    assert!(decoded.segment_secret.ct_eq(&payload.segment_secret));
    let mut bad = encoded.to_vec();
    bad[SLOT_PLAINTEXT_LEN - 1] = 1;
    assert_eq!(
        SlotPayload::decode(&bad).unwrap_err(),
        SlotDecodeError::Malformed
    );
    bad = encoded.to_vec();
    bad[0] = FORMAT_VERSION + 1;
    assert_eq!(
        SlotPayload::decode(&bad).unwrap_err(),
        SlotDecodeError::Unsupported
    );
    assert_eq!(
        SlotPayload::decode(&encoded[..100]).unwrap_err(),
        SlotDecodeError::Malformed
    );
    assert!(!format!("{payload:?}").contains("5, 5"));
}

#[test]
fn derived_names_are_hex_and_distinct() {
    let key = name_key(&Secret32::from_bytes([1; 32]));
    let names = [
        segment_name(&key, 0),
        segment_name(&key, 1),
        temp_name(&key, 0),
        temp_name(&key, 1),
    ];
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name.len(), NAME_HEX_LEN);
        assert_ne!(name, LEGACY_KEYSLOT_FILE_NAME);
        assert!(names[..i].iter().all(|other| other != name));
    }
    assert_ne!(
        segment_name(&name_key(&Secret32::from_bytes([2; 32])), 0),
        names[0]
    );
}
