//! The Fusion paper's published Tables II and III (Dong et al., "Fusion:
//! Efficient and Secure Inference Resilient to Malicious Servers", NDSS
//! 2023): Fusion instantiated on ABY, DELPHI, CrypTFlow2 (SCI_HE) and
//! Cheetah, MNIST (Table II) and CIFAR-10 (Table III), copied as numbers so
//! that `fusion-bench report` can stand them beside ours.
//!
//! They are published claims, not verified here. Communication is in MiB and
//! runtime in seconds (LAN: 382 MB/s, 0.3 ms RTT; WAN: 44 MB/s, 40 ms RTT;
//! lambda = 40, T = 100). Several cells are far below what any implementation
//! of the named protocol measures (e.g. Cheetah: 0.19 MiB for 164 MNIST
//! samples, about 1.2 KiB per sample for a CNN with 784 inputs), and the
//! paper does not say which MNIST / CIFAR-10 networks produced them; ours
//! run the zoo's `cnn-mnist` and the CIFAR-10-shaped `cnn-cifar10`.

/// One published cell: communication (MiB), LAN and WAN seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperCell {
    /// Communication, MiB.
    pub mib: f64,
    /// LAN runtime, seconds.
    pub lan_s: f64,
    /// WAN runtime, seconds.
    pub wan_s: f64,
}

/// The backends in the paper's column order.
pub const BACKENDS: [&str; 4] = ["aby", "delphi", "cryptflow2", "cheetah"];

const fn c(mib: f64, lan_s: f64, wan_s: f64) -> PaperCell {
    PaperCell { mib, lan_s, wan_s }
}

/// Table II (MNIST): per `(R, B)` row, the cells of [`BACKENDS`].
const MNIST: [((u64, u64), [PaperCell; 4]); 6] = [
    (
        (8, 8),
        [
            c(27.4949, 0.1211, 0.3843),
            c(20.6144, 0.0862, 0.2583),
            c(1.9984, 0.0101, 0.0333),
            c(0.1914, 0.0039, 0.0068),
        ],
    ),
    (
        (32, 7),
        [
            c(54.4965, 0.2407, 0.7386),
            c(40.7033, 0.1711, 0.5128),
            c(3.9787, 0.0201, 0.0676),
            c(0.3782, 0.0073, 0.0136),
        ],
    ),
    (
        (128, 6),
        [
            c(146.0627, 0.6393, 1.9728),
            c(107.6844, 0.4619, 1.3667),
            c(10.5904, 0.0541, 0.1808),
            c(1.0133, 0.0198, 0.0363),
        ],
    ),
    (
        (512, 5),
        [
            c(441.7787, 1.9620, 5.9044),
            c(335.8445, 1.4615, 4.2086),
            c(32.6136, 0.1651, 0.5529),
            c(3.1048, 0.0605, 0.1105),
        ],
    ),
    (
        (8192, 4),
        [
            c(5478.9059, 24.3705, 73.9667),
            c(4124.8922, 18.1847, 51.7762),
            c(400.9943, 2.0339, 6.7420),
            c(38.3905, 0.7429, 1.3678),
        ],
    ),
    (
        (524_288, 3),
        [
            c(262641.3367, 1166.8446, 3607.8405),
            c(197253.8050, 887.0325, 2475.5588),
            c(19340.8286, 98.3081, 327.7937),
            c(1832.7539, 35.7586, 65.8347),
        ],
    ),
];

/// Table III (CIFAR-10), same layout.
const CIFAR: [((u64, u64), [PaperCell; 4]); 6] = [
    (
        (8, 8),
        [
            c(33.1801, 0.1405, 0.4155),
            c(25.4172, 0.1016, 0.2982),
            c(2.4810, 0.0121, 0.0387),
            c(0.2350, 0.0046, 0.0078),
        ],
    ),
    (
        (32, 7),
        [
            c(65.5365, 0.2776, 0.8237),
            c(50.3487, 0.1994, 0.5907),
            c(4.9215, 0.0239, 0.0768),
            c(0.4637, 0.0091, 0.0154),
        ],
    ),
    (
        (128, 6),
        [
            c(175.8464, 0.7456, 2.1523),
            c(134.9016, 0.5372, 1.5797),
            c(13.1828, 0.0639, 0.2051),
            c(1.2436, 0.0243, 0.0414),
        ],
    ),
    (
        (512, 5),
        [
            c(537.8853, 2.2732, 6.8505),
            c(409.4743, 1.6361, 4.8425),
            c(40.0124, 0.1961, 0.6345),
            c(3.8084, 0.0745, 0.1261),
        ],
    ),
    (
        (8192, 4),
        [
            c(6659.7936, 28.1152, 83.2735),
            c(5140.3375, 20.1743, 59.4230),
            c(497.8308, 2.4246, 7.7918),
            c(47.0841, 0.9203, 1.5706),
        ],
    ),
    (
        (524_288, 3),
        [
            c(318618.4824, 1337.5954, 4075.8356),
            c(245896.7141, 971.4180, 2854.9131),
            c(23768.0474, 115.9847, 374.3836),
            c(2256.4829, 44.1961, 75.1037),
        ],
    ),
];

/// The paper's cell for our network `net` (`cnn-mnist`: Table II,
/// `cnn-cifar10`: Table III), queries `r`, copies `b` and `backend`.
pub fn cell(net: &str, r: u64, b: u64, backend: &str) -> Option<PaperCell> {
    let table = match net {
        "cnn-mnist" => &MNIST,
        "cnn-cifar10" => &CIFAR,
        _ => return None,
    };
    let col = BACKENDS.iter().position(|&x| x == backend)?;
    table
        .iter()
        .find(|((rr, bb), _)| *rr == r && *bb == b)
        .map(|(_, cells)| cells[col])
}

/// The paper's table number for our network.
pub fn table_name(net: &str) -> Option<&'static str> {
    match net {
        "cnn-mnist" => Some("Table II (MNIST)"),
        "cnn-cifar10" => Some("Table III (CIFAR-10)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_found_by_network_layout_and_backend() {
        let x = cell("cnn-mnist", 8, 8, "cheetah").expect("cell");
        assert!((x.mib - 0.1914).abs() < 1e-12);
        let y = cell("cnn-cifar10", 32, 7, "aby").expect("cell");
        assert!((y.wan_s - 0.8237).abs() < 1e-12);
        assert!(cell("cnn-mnist", 8, 7, "cheetah").is_none());
        assert!(cell("lenet", 8, 8, "cheetah").is_none());
        assert!(cell("cnn-mnist", 8, 8, "spu").is_none());
    }
}
