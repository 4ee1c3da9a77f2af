use super::{parse, print};
use crate::ir::{
    Aggregation, CmpOp, DType, Dist, Graph, Loc, Op, OutputRole, Role, TensorType, Type, ValueId,
    Window, verify,
};
use std::collections::BTreeSet;

fn loc(scope: &str, file: &str, line: u32, col: u32) -> Loc {
    Loc {
        scope: scope.into(),
        file: file.into(),
        line,
        col,
    }
}

fn at(line: u32) -> Loc {
    loc("Mlp.dense_1", "examples/demo.nnl", line, 5)
}

fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape.to_vec())
}

fn i32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::I32, shape.to_vec())
}

fn constant(g: &mut Graph, value: f64, ty: TensorType) -> ValueId {
    g.add(Op::Const { value, ty }, vec![], Loc::default())
}

/// Prints, parses back to the same graph, and prints the same text again.
fn round_trip(g: &Graph) -> String {
    verify(g).unwrap();
    let text = print(g);
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, g, "{text}");
    assert_eq!(print(&back), text);
    text
}

/// A body with a carry `h: f32[4]`, a sequence slice `x: f32[3]` and a constant `w: f32[3, 4]`;
/// it returns the new carry and a scalar per step, and nests a reverse scan of its own.
fn cell() -> Graph {
    let mut b = Graph::new("cell");
    let h = b.input("h", Role::Arg, f32t(&[4]));
    let x = b.input("x", Role::Arg, f32t(&[3]));
    let w = b.input("w", Role::Arg, f32t(&[3, 4]));
    let row = b.add(Op::Reshape { shape: vec![1, 3] }, vec![x], at(40));
    let xw = b.add(Op::MatMul, vec![row, w], at(41));
    let xw = b.add(Op::Reshape { shape: vec![4] }, vec![xw], Loc::default());
    let h2 = b.add(Op::Add, vec![xw, h], loc("", "examples/demo.nnl", 42, 1));
    let y = b.add(Op::Sum { axes: vec![0] }, vec![h2], at(43));
    let mut inner = Graph::new("");
    let e = inner.input("e", Role::Arg, TensorType::scalar(DType::F32));
    let n = inner.add(Op::Neg, vec![e], at(44));
    inner.add_output("n", n, OutputRole::Value);
    let scan = Op::Scan {
        body: Box::new(inner),
        carries: 0,
        seqs: 1,
        reverse: true,
    };
    let negs = b.add(scan, vec![x], at(45));
    let negs = b.add(Op::Get { index: 0 }, vec![negs], Loc::default());
    b.add_output("h", h2, OutputRole::Value);
    b.add_output("y", y, OutputRole::Value);
    b.add_output("negs", negs, OutputRole::Value);
    b
}

/// One graph with every op, every role, cmp kind and dist, and locations of every form.
fn every_op() -> Graph {
    let mut g = Graph::new("train step");
    let x = g.input("x", Role::Data, f32t(&[2, 3]));
    let w = g.input("Mlp.dense_1.w", Role::Param, f32t(&[3, 4]));
    let mean = g.input("Mlp.bn.mean", Role::State, f32t(&[4]));
    let m = g.input("Mlp.dense_1.w.m", Role::OptState, f32t(&[3, 4]));
    let step = g.input("step", Role::Counter, TensorType::scalar(DType::I32));
    let key = g.input("rng", Role::Rng, i32t(&[2]));
    let input = Op::Input {
        name: "odd \"name\"\n\t\\ é ✓ \u{7f}".into(),
        role: Role::Arg,
        ty: f32t(&[2, 4]),
    };
    let dy = g.add(input, vec![], loc("", "in put.nnl", 1, 1));

    let h = g.add(Op::MatMul, vec![x, w], at(30));
    let c = constant(&mut g, -1.5, f32t(&[2, 4]));
    let mut consts = Vec::new();
    for value in [
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        1e-300,
        f64::MIN_POSITIVE,
        1.7976931348623157e308,
        -0.0,
        0.1,
        1e-7,
        123456789.0,
        1e21,
        -3.0,
    ] {
        consts.push(constant(&mut g, value, TensorType::scalar(DType::F64)));
    }
    let iota = g.add(
        Op::Iota {
            axis: 1,
            ty: i32t(&[2, 4]),
        },
        vec![],
        at(31),
    );
    let ru = g.add(
        Op::Rand {
            dist: Dist::Uniform,
            stream: 0,
            ty: f32t(&[2, 4]),
        },
        vec![key],
        at(32),
    );
    let rn = g.add(
        Op::Rand {
            dist: Dist::Normal,
            stream: 7,
            ty: TensorType::new(DType::F64, vec![3]),
        },
        vec![key],
        loc("Weird scope", "examples/demo.nnl", 33, 2),
    );
    for op in [
        Op::Neg,
        Op::Exp,
        Op::Log,
        Op::Sqrt,
        Op::Sin,
        Op::Cos,
        Op::Detach,
    ] {
        g.add(op, vec![h], at(34));
    }
    for to in [DType::F64, DType::I32, DType::Bool] {
        g.add(Op::Cast { to }, vec![h], at(35));
    }
    g.add(Op::Cast { to: DType::F32 }, vec![iota], Loc::default());
    for op in [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min] {
        g.add(op, vec![h, c], loc("a@b", "C:\\models\\x.nnl", 36, 9));
    }
    let mut bools = Vec::new();
    for cmp in CmpOp::ALL {
        bools.push(g.add(Op::Cmp(cmp), vec![h, ru], at(37)));
    }
    let and = g.add(Op::And, vec![bools[0], bools[1]], at(38));
    let or = g.add(Op::Or, vec![and, bools[2]], at(38));
    let not = g.add(Op::Not, vec![or], at(38));
    g.add(Op::Select, vec![not, h, c], at(39));
    g.add(Op::Sum { axes: vec![0, 1] }, vec![h], at(40));
    g.add(Op::Sum { axes: vec![] }, vec![h], at(40));
    g.add(Op::ReduceMax { axes: vec![1] }, vec![h], at(41));
    g.add(Op::Argmax { axis: 1 }, vec![h], at(41));
    g.add(Op::Reshape { shape: vec![8] }, vec![h], at(42));
    g.add(
        Op::Reshape {
            shape: vec![2, 1, 2, 2],
        },
        vec![h],
        at(42),
    );
    g.add(Op::Permute { perm: vec![1, 0] }, vec![h], at(43));
    g.add(Op::Broadcast { shape: vec![2, 4] }, vec![mean], at(44));
    g.add(Op::Broadcast { shape: vec![3, 2] }, vec![consts[0]], at(44));
    g.add(
        Op::Slice {
            axis: 1,
            start: 1,
            end: 3,
        },
        vec![h],
        at(45),
    );
    g.add(
        Op::Pad {
            axis: 0,
            lo: 1,
            hi: 2,
        },
        vec![h],
        at(46),
    );
    g.add(Op::Concat { axis: 1 }, vec![h, c, ru], at(47));
    let xs = g.add(
        Op::Broadcast {
            shape: vec![5, 2, 3],
        },
        vec![x],
        at(48),
    );
    let ws = g.add(
        Op::Broadcast {
            shape: vec![5, 3, 4],
        },
        vec![w],
        at(48),
    );
    g.add(Op::MatMul, vec![xs, ws], at(48));
    let image = g.add(
        Op::Reshape {
            shape: vec![1, 2, 2, 3],
        },
        vec![m],
        at(49),
    );
    let image = g.add(
        Op::Pad {
            axis: 2,
            lo: 1,
            hi: 2,
        },
        vec![image],
        at(49),
    );
    let window = Window {
        kernel: 3,
        stride: 2,
        padding: 1,
        dilation: 1,
    };
    let cols = g.add(Op::Unfold(window), vec![image], at(50));
    g.add(
        Op::Fold {
            window,
            size: [5, 3],
        },
        vec![cols],
        at(51),
    );
    let dilated = Window {
        kernel: 2,
        stride: 1,
        padding: 0,
        dilation: 2,
    };
    g.add(Op::Unfold(dilated), vec![image], at(52));
    let rows = g.add(Op::Gather, vec![w, iota], at(53));
    g.add(Op::ScatterAdd { rows: 3 }, vec![iota, rows], at(54));

    let forward = Op::Scan {
        body: Box::new(cell()),
        carries: 1,
        seqs: 1,
        reverse: false,
    };
    let scan = g.add(
        forward,
        vec![mean, x, w],
        loc("Rnn", "examples/rnn.nnl", 60, 3),
    );
    let last = g.add(Op::Get { index: 0 }, vec![scan], at(61));
    let ys = g.add(Op::Get { index: 1 }, vec![scan], at(61));
    let mut back = cell();
    back.name = "step back".into();
    let backward = Op::Scan {
        body: Box::new(back),
        carries: 1,
        seqs: 1,
        reverse: true,
    };
    let scan = g.add(backward, vec![last, x, w], Loc::default());
    let negs = g.add(Op::Get { index: 2 }, vec![scan], Loc::default());

    // Every output role, so that each reads back.
    g.add_output("loss", h, OutputRole::Loss);
    g.add_output("ys", ys, OutputRole::Prediction);
    g.add_output("negs", negs, OutputRole::Value);
    g.add_output("step", step, OutputRole::Update(Role::Counter));
    g.add_output(
        "normal",
        rn,
        OutputRole::Metric(Aggregation::RootMeanSquare),
    );
    g.add_output("mean", rn, OutputRole::Metric(Aggregation::Mean));
    g.add_output("r2", h, OutputRole::Metric(Aggregation::R2));
    g.add_output("grad \"x\"", dy, OutputRole::Gradient);
    for health in crate::ir::Health::ALL {
        g.add_output(
            format!("health.x.{}", health.name()),
            h,
            OutputRole::Health(health),
        );
    }
    g
}

fn op_names(g: &Graph, names: &mut BTreeSet<&'static str>) {
    for node in &g.nodes {
        names.insert(node.op.name());
        if let Op::Scan { body, .. } = &node.op {
            op_names(body, names);
        }
    }
}

#[test]
fn every_op_round_trips() {
    let g = every_op();
    let mut names = BTreeSet::new();
    op_names(&g, &mut names);
    let all = "input const iota rand_uniform rand_normal neg exp log sqrt sin cos not cast detach \
               add sub mul div max min eq ne lt le gt ge and or select sum reduce_max argmax \
               reshape permute broadcast slice pad concat matmul unfold fold gather scatter_add \
               scan get";
    assert_eq!(names, all.split_whitespace().collect());
    let roles: BTreeSet<&str> = g.inputs().map(|(_, _, r)| r.name()).collect();
    assert_eq!(roles.len(), 7);
    let text = round_trip(&g);
    assert!(text.starts_with("graph \"train step\" {\n"), "{text}");
    assert!(
        text.contains("carries=1 seqs=1 reverse body=\"step back\" {"),
        "{text}"
    );
    assert!(
        text.contains("carries=0 seqs=1 reverse body=\"\" {"),
        "{text}"
    );
    assert!(
        text.contains("; \"Weird scope\" @ examples/demo.nnl:33:2"),
        "{text}"
    );
    assert!(
        text.contains("; \"a@b\" @ C:\\models\\x.nnl:36:9"),
        "{text}"
    );
    assert!(text.contains("; @ \"in put.nnl\":1:1"), "{text}");
}

#[test]
fn small_graph_prints_as_documented() {
    let mut g = Graph::new("eval");
    let x = g.input("x", Role::Data, f32t(&[64, 784]));
    let w = g.input("Mlp.dense_1.w", Role::Param, f32t(&[784, 128]));
    let y = g.add(
        Op::MatMul,
        vec![x, w],
        loc("Mlp.dense_1", "examples/mnist_mlp.nnl", 30, 8),
    );
    g.add_output("out", y, OutputRole::Value);
    let text = round_trip(&g);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "graph eval {");
    assert_eq!(lines[1], "  %0: f32[64, 784] = input \"x\" data");
    assert!(lines[3].starts_with("  %2: f32[64, 128] = matmul %0, %1 "));
    assert!(lines[3].ends_with(" ; Mlp.dense_1 @ examples/mnist_mlp.nnl:30:8"));
    assert_eq!(lines[4], "  output \"out\" = %2");
    assert_eq!(lines[5], "}");
}

#[test]
fn empty_graph_and_empty_tuple_round_trip() {
    round_trip(&Graph::new(""));
    round_trip(&Graph::new("ünïcode_1"));
    let mut g = Graph::new("g");
    let xs = g.input("xs", Role::Data, f32t(&[3]));
    let mut body = Graph::new("nothing");
    body.input("x", Role::Arg, TensorType::scalar(DType::F32));
    let scan = Op::Scan {
        body: Box::new(body),
        carries: 0,
        seqs: 1,
        reverse: false,
    };
    let v = g.add(scan, vec![xs], at(3));
    assert_eq!(g.node(v).ty, Type::Tuple(vec![]));
    assert!(round_trip(&g).contains("%1: () = scan %0"));
}

#[test]
fn nan_reads_back_as_nan() {
    let mut g = Graph::new("g");
    let v = constant(&mut g, f64::NAN, f32t(&[2]));
    g.add_output("nan", v, OutputRole::Value);
    let text = print(&g);
    let back = parse(&text).unwrap();
    let Op::Const { value, ty } = &back.nodes[0].op else {
        panic!("{text}");
    };
    assert!(value.is_nan());
    assert_eq!(ty, &f32t(&[2]));
    assert_eq!(print(&back), text);
}

#[test]
fn constants_read_back_bit_for_bit() {
    let mut g = Graph::new("g");
    let mut x = 1.0f64;
    for _ in 0..200 {
        x *= -7.3;
        constant(&mut g, x, TensorType::scalar(DType::F64));
        constant(&mut g, 1.0 / x, TensorType::scalar(DType::F32));
    }
    let back = parse(&print(&g)).unwrap();
    for (a, b) in g.nodes.iter().zip(&back.nodes) {
        let (Op::Const { value: a, .. }, Op::Const { value: b, .. }) = (&a.op, &b.op) else {
            panic!("not constants");
        };
        assert_eq!(a.to_bits(), b.to_bits());
    }
}

/// The error of a text, which must name the given line.
fn error(text: &str, line: usize) -> String {
    let e = parse(text).expect_err(text);
    assert!(e.starts_with(&format!("line {line}: ")), "{e}\n{text}");
    e
}

const SMALL: &str = "graph g {
  %0: f32[2, 3] = input \"x\" data
  %1: f32[2, 3] = neg %0                         ; S @ f.nnl:3:4
  output \"y\" = %1
}
";

#[test]
fn malformed_texts_are_errors() {
    parse(SMALL).unwrap();
    let cases: &[(&str, &str, usize)] = &[
        ("f32[2, 3] = neg", "f32[2, 4] = neg", 3),
        ("neg %0", "frobnicate %0", 3),
        ("neg %0", "neg %5", 3),
        ("neg %0", "neg", 3),
        ("neg %0", "neg %0, %0", 3),
        ("neg %0", "neg %0 axis=1", 3),
        ("%1:", "%2:", 3),
        ("%1: f32[2, 3]", "%1: (f32[2, 3])", 3),
        ("%1: f32[2, 3]", "%1: f33[2, 3]", 3),
        ("%1: f32[2, 3]", "%1: f32[2, 3", 3),
        ("= input \"x\" data", "= input \"x\" dada", 2),
        ("= input \"x\" data", "= input \"x data", 2),
        ("= input \"x\" data", "= input x data", 2),
        ("= input \"x\" data", "= input \"\\q\" data", 2),
        ("= input \"x\" data", "= input \"\\u{d800}\" data", 2),
        ("S @ f.nnl:3:4", "S @ f.nnl:3", 3),
        ("S @ f.nnl:3:4", "S @ f.nnl:0:4", 3),
        ("S @ f.nnl:3:4", "S f.nnl:3:4", 3),
        ("S @ f.nnl:3:4", "S @ f.nnl:3:4 extra", 3),
        ("; S @", "S @", 3),
        ("output \"y\" = %1", "output \"y\" = %7", 4),
        ("output \"y\" = %1", "output y = %1", 4),
        ("output \"y\" = %1", "output \"y\" los = %1", 4),
        ("output \"y\" = %1", "output \"y\" metric = %1", 4),
        ("output \"y\" = %1", "output \"y\" metric median = %1", 4),
        ("output \"y\" = %1", "output \"y\" new = %1", 4),
        ("output \"y\" = %1", "output \"y\" new weights = %1", 4),
        ("output \"y\" = %1", "output \"y\" loss %1", 4),
        (
            "output \"y\" = %1",
            "output \"y\" = %1\n  output \"y\" = %0",
            5,
        ),
        ("output \"y\" = %1", "%2: f32[2, 3] = input \"x\" data", 4),
        ("graph g {", "graph g", 1),
        ("graph g {", "grape g {", 1),
        ("}\n", "}\n}\n", 6),
        ("}\n", "} extra\n", 5),
        ("}\n", "\n", 4),
        ("}\n", "}\ngraph h {\n}\n", 6),
    ];
    for (from, to, line) in cases {
        assert!(SMALL.contains(from), "{from}");
        error(&SMALL.replacen(from, to, 1), *line);
    }
    error("", 1);
    error("\n\n", 1);
    error("hello world", 1);
    error("graph g {\n  %0: f32[] = const zero\n}", 2);
    error("graph g {\n  %0: f32[] = const\n}", 2);
    error("graph g {\n  %0: (f32[]) = const 1.0\n}", 2);
    error("graph g {\n  %0: f32[] = iota axis=0\n}", 2);
    error("graph g {\n  %0: f32[] = scatter_add\n}", 2);
    error(
        "graph g {\n  %0: i32[2] = input \"k\" rng\n  %1: i32[3] = rand_normal %0 stream=0\n}",
        3,
    );
}

#[test]
fn ill_formed_ops_are_errors() {
    let head = "graph g {
  %0: f32[1, 1, 4, 4] = input \"x\" data
  %1: f32[1, 1, 4] = input \"c\" data
";
    let node = |line: &str| format!("{head}  {line}\n}}\n");
    for line in [
        "%2: f32[1, 0, 4] = unfold %0 kernel=0 stride=1 padding=0 dilation=1",
        "%2: f32[1, 1, 4] = unfold %0 kernel=1 stride=0 padding=0 dilation=1",
        "%2: f32[1, 1, 4] = unfold %0 kernel=4294967296 stride=1 padding=9223372036854775807 \
         dilation=1",
        "%2: f32[1, 1, 4] = unfold %0 kernel=18446744073709551615 stride=1 padding=0 dilation=2",
        "%2: f32[1, 1, 2, 2] = fold %1 kernel=1 stride=0 padding=0 dilation=1 size=[2,2]",
        "%2: f32[1, 1, 2, 2] = fold %1 kernel=0 stride=1 padding=0 dilation=1 size=[2,2]",
        "%2: f32[1, 1, 2, 2] = fold %1 kernel=4294967296 stride=1 padding=4294967296 \
         dilation=1 size=[2,2]",
        "%2: f32[1, 1, 2, 2] = fold %1 kernel=1 stride=1 padding=0 dilation=1 size=[2]",
        "%2: f32[1, 1, 4, 4] = pad %0 axis=3 lo=18446744073709551615 hi=1",
        "%2: f32[1, 1, 4, 4] = pad %0 axis=3 lo=18446744073709551616 hi=1",
        "%2: f32[18446744073709551615, 2] = reshape %0",
        "%2: f32[16, 2] = reshape %0",
        "%2: f32[4, 4] = slice %0 axis=9 start=0 end=1",
        "%2: f32[4, 4] = sum %0 axes=[0,0]",
        "%2: f32[4, 4] = permute %0 perm=[0,1,1,2]",
        "%2: f32[4, 4] = get %0 index=0",
        "%2: f32[4, 4] = concat axis=0",
        "%2: (f32[1, 4, 4]) = scan %0 carries=18446744073709551615 seqs=18446744073709551615 \
         body=b {\n    %0: f32[1, 4, 4] = input \"a\" arg\n  }",
    ] {
        error(&node(line), 4);
    }
    // Broadcasting to a shape whose element count overflows, then concatenating it with itself.
    let huge = "graph g {
  %0: f32[1] = input \"x\" data
  %1: f32[9223372036854775807] = broadcast %0
  %2: f32[1] = concat %1, %1 axis=0
}";
    error(huge, 4);
}

#[test]
fn scan_bodies_are_checked() {
    let mut g = Graph::new("g");
    let xs = g.input("xs", Role::Data, f32t(&[3, 2]));
    let mut body = Graph::new("b");
    let x = body.input("x", Role::Arg, f32t(&[2]));
    body.add_output("y", x, OutputRole::Value);
    let scan = Op::Scan {
        body: Box::new(body),
        carries: 0,
        seqs: 1,
        reverse: false,
    };
    g.add(scan, vec![xs], at(9));
    let text = round_trip(&g);
    // The body has its own numbering, names and outputs.
    assert!(text.contains("\n    %0: f32[2] = input \"x\" arg\n    output \"y\" = %0\n  }"));
    error(&text.replace("    %0: f32[2]", "    %2: f32[2]"), 4);
    error(&text.replace("\"y\" = %0\n  }", "\"y\" = %1\n  }"), 5);
    let twice = "input \"xs\" arg\n    %1: f32[2] = input \"xs\" arg";
    error(&text.replace("input \"x\" arg", twice), 5);
    error(&text.replace("(f32[3, 2])", "(f32[3, 3])"), 3);
    error(&text.replace("seqs=1", "seqs=2"), 3);
    error(&text.replace("body=b", "body="), 3);
    error(&text.replace("body=b {", "body=b"), 3);
    error(&text.replace("@ examples", "examples"), 6);
    error(&text[..text.find("  }").unwrap()], 5);
    // A tuple cannot be an output, and only `get` takes it apart.
    error(&text.replace("\n}\n", "\n  output \"t\" = %1\n}\n"), 7);
    error(&text.replace("\n}\n", "\n  %2: f32[3, 2] = neg %1\n}\n"), 7);
}

#[test]
fn nesting_is_bounded() {
    let mut text = String::from("graph g {\n  %0: f32[1] = input \"x\" data\n");
    for _ in 0..300 {
        text.push_str("%1: (f32[1]) = scan %0 carries=0 seqs=1 body=b {\n");
        text.push_str("%0: f32[] = input \"x\" arg\n");
    }
    assert!(parse(&text).unwrap_err().contains("nest more than 256"));
}

/// A tiny linear congruential generator, enough to pick characters to mutate.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[test]
fn mutated_texts_never_panic() {
    let text = print(&every_op());
    let chars: Vec<char> = text.chars().collect();
    let mut rng = Lcg(0x5eed);
    let mut parsed = 0;
    for round in 0..3000 {
        let mut s = chars.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(s.len());
            if rng.below(2) == 0 {
                s.remove(i);
            } else {
                s.insert(i, s[i]);
            }
        }
        // Some rounds cut the text short as well.
        if round % 10 == 0 {
            s.truncate(rng.below(s.len()));
        }
        let mutated: String = s.into_iter().collect();
        if let Ok(g) = parse(&mutated) {
            parsed += 1;
            verify(&g).unwrap_or_else(|e| panic!("{e}\n{mutated}"));
            let text = print(&g);
            assert_eq!(parse(&text).map(|g| print(&g)), Ok(text));
        }
    }
    // Many edits only touch padding or locations, so some texts still read.
    assert!(parsed > 0);
}

#[test]
fn every_primitive_round_trips() {
    for &prim in crate::ir::Prim::ALL {
        for float in [DType::F32, DType::F64] {
            round_trip(&crate::ir::samples::sample(prim, float));
        }
    }
}
