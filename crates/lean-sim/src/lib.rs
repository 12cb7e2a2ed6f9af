//! lean-sim: a stand-in for Lean that speaks the REPL protocol and the
//! `lean --json` output exactly, with behaviour set by the snippet (see
//! `docs/lean-sim.md`), and that can replay recorded transcripts.
//!
//! It is how the farm is tested where Lean cannot be installed. It never
//! pretends to check mathematics: its verdicts come from simple text rules
//! and `-- sim:` directives.

mod acts;
mod analysis;
mod replay;
mod tactics;
mod terms;

use analysis::{tokens, Declaration, Item, LineCol};
use lean_protocol::{
    CommandReply, FrameError, FrameReader, Message, Pos, ProofStepReply, Reply, Request, Severity,
    Sorry,
};
use serde_json::Map;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::time::Duration;

/// Run lean-sim with these arguments (without the program name); returns the exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        // Bare, like the REPL binary of leanprover-community/repl.
        [] | ["repl"] => run_repl(None),
        ["repl", "--replay", dir] => match replay::Recordings::load(std::path::Path::new(dir)) {
            Ok(recordings) => run_repl(Some(recordings)),
            Err(error) => {
                eprintln!("lean-sim: cannot load transcripts from {dir}: {error}");
                2
            }
        },
        ["--json", file] => run_json(file),
        ["--version"] => {
            println!(
                "lean-sim {} (stand-in for Lean 4; checks no mathematics)",
                env!("CARGO_PKG_VERSION")
            );
            0
        }
        _ => {
            eprintln!("usage: lean-sim [repl [--replay DIR]] | lean-sim --json FILE.lean | lean-sim --version");
            2
        }
    }
}

/// A declaration in an environment, with the axioms it depends on.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Constant {
    name: String,
    /// The keyword that declared it (`theorem`, `instance`, ...).
    kind: String,
    axioms: BTreeSet<String>,
    signature: String,
    /// The type as a term key (see `terms`): what the farm compares.
    term: String,
    /// Whether Lean's kernel checked it when it was added; `false` models a
    /// metaprogram that added it with the check off. Replaying it through
    /// the kernel (`unpickleEnvFrom`) fails.
    #[serde(default = "checked")]
    kernel_checked: bool,
}

fn checked() -> bool {
    true
}

impl Constant {
    /// The kind Lean's `ConstantInfo` gives a constant declared with this keyword.
    fn constant_kind(&self) -> &'static str {
        match self.kind.as_str() {
            "theorem" | "lemma" => "theorem",
            "axiom" => "axiom",
            "opaque" => "opaque",
            "structure" | "inductive" | "class" => "inductive",
            _ => "def",
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Environment {
    constants: Vec<Constant>,
    /// The audit commands defined so far (the farm's, and any a snippet
    /// defines under another name: defining one never removes another, as
    /// in Lean). Like every command and elaborator, they are
    /// environment-extension state: a pickle does not carry them.
    #[serde(skip)]
    audits: Vec<String>,
    #[serde(skip)]
    print_axioms_spoofed: bool,
    /// Whether the header imports Mathlib (whose notation prints `ℕ`, `ℤ`, ...).
    #[serde(default)]
    mathlib: bool,
}

impl Environment {
    fn find(&self, name: &str) -> Option<&Constant> {
        self.constants.iter().find(|constant| constant.name == name)
    }
}

/// The namespaces and sections open while a command is elaborated.
#[derive(Default)]
struct Scope {
    /// Namespaces names resolve through (`open`, and the current namespaces).
    opens: Vec<String>,
    /// Open `namespace`s (with their names) and `section`s (`None`).
    blocks: Vec<Option<String>>,
}

impl Scope {
    /// A name as declared inside the current namespaces.
    fn prefixed(&self, name: &str) -> String {
        let mut full: Vec<&str> = self.blocks.iter().flatten().map(String::as_str).collect();
        full.push(name);
        full.join(".")
    }
}

#[derive(Default)]
struct Session {
    environments: Vec<Environment>,
    proof_states: Vec<ProofState>,
}

/// A proof state: its goals, whether its proof already holds a `sorry`, and
/// what names resolve in it. A pickle of it is this, as JSON.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct ProofState {
    goals: Vec<tactics::Goal>,
    #[serde(default)]
    sorry: bool,
    #[serde(default)]
    mathlib: bool,
    #[serde(default)]
    constants: Vec<String>,
}

impl ProofState {
    fn rendered_goals(&self) -> Vec<String> {
        self.goals
            .iter()
            .map(|goal| goal.render(self.mathlib))
            .collect()
    }

    fn status(&self) -> &'static str {
        if !self.goals.is_empty() {
            "Incomplete: open goals remain"
        } else if self.sorry {
            "Incomplete: contains sorry"
        } else {
            "Completed"
        }
    }
}

/// A message of tactic mode: Lean places them at 0:0.
fn tactic_message(severity: Severity, data: impl Into<String>) -> Message {
    message(severity, (0, 0), (0, 0), data)
}

/// What answering a command does besides the reply.
enum Fault {
    None,
    Garbage,
    ExitMidReply,
    Silent,
    Crash,
    Exit(i32),
    Flood(usize),
}

fn pos(position: LineCol) -> Pos {
    Pos {
        line: position.0,
        column: position.1,
    }
}

fn message(severity: Severity, start: LineCol, end: LineCol, data: impl Into<String>) -> Message {
    Message {
        severity,
        pos: pos(start),
        end_pos: Some(pos(end)),
        data: data.into(),
        extra: Map::new(),
    }
}

impl Session {
    fn new_proof_state(&mut self, state: ProofState) -> u64 {
        self.proof_states.push(state);
        self.proof_states.len() as u64 - 1
    }

    fn new_environment(&mut self, environment: Environment) -> u64 {
        self.environments.push(environment);
        self.environments.len() as u64 - 1
    }

    fn answer(&mut self, request: Request) -> (Reply, Fault) {
        match request {
            Request::Command(command) => self.command(&command.cmd, command.env),
            Request::File(file) => match std::fs::read_to_string(&file.path) {
                Ok(text) => self.command(&text, file.env),
                Err(error) => (
                    Reply::Error {
                        message: format!("no such file: {} ({error})", file.path),
                    },
                    Fault::None,
                ),
            },
            Request::Tactic(tactic) => {
                match self.proof_states.get(tactic.proof_state as usize).cloned() {
                    None => (
                        Reply::Error {
                            message: "Unknown proof state.".into(),
                        },
                        Fault::None,
                    ),
                    Some(state) => self.tactic(&tactic.tactic, state),
                }
            }
            Request::PickleEnv { pickle_to, env } => match self.environments.get(env as usize) {
                None => (
                    Reply::Error {
                        message: "Unknown environment.".into(),
                    },
                    Fault::None,
                ),
                Some(environment) => {
                    let written = serde_json::to_vec(environment)
                        .map_err(std::io::Error::other)
                        .and_then(|bytes| std::fs::write(&pickle_to, bytes));
                    match written {
                        Ok(()) => (
                            Reply::Command(CommandReply {
                                env,
                                ..Default::default()
                            }),
                            Fault::None,
                        ),
                        Err(error) => (
                            Reply::Error {
                                message: format!("cannot write {pickle_to}: {error}"),
                            },
                            Fault::None,
                        ),
                    }
                }
            },
            Request::UnpickleEnv { unpickle_env_from } => {
                let loaded = std::fs::read(&unpickle_env_from)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| {
                        serde_json::from_slice::<Environment>(&bytes).map_err(|e| e.to_string())
                    });
                let loaded = loaded.and_then(|environment| {
                    // Replaying re-adds every constant through the kernel.
                    match environment.constants.iter().find(|c| !c.kernel_checked) {
                        Some(constant) => Err(format!(
                            "(kernel) declaration type mismatch, '{}' has type\n  {}\nbut its value does not",
                            constant.name,
                            constant.signature.trim_start_matches(':').trim()
                        )),
                        None => Ok(environment),
                    }
                });
                match loaded {
                    Ok(environment) => {
                        let env = self.new_environment(environment);
                        (
                            Reply::Command(CommandReply {
                                env,
                                ..Default::default()
                            }),
                            Fault::None,
                        )
                    }
                    Err(error) => (
                        Reply::Error {
                            message: format!("cannot read {unpickle_env_from}: {error}"),
                        },
                        Fault::None,
                    ),
                }
            }
            Request::PickleProofState {
                pickle_to,
                proof_state,
            } => match self.proof_states.get(proof_state as usize).cloned() {
                None => (
                    Reply::Error {
                        message: "Unknown proof state.".into(),
                    },
                    Fault::None,
                ),
                Some(state) => {
                    let written = serde_json::to_vec(&state)
                        .map_err(std::io::Error::other)
                        .and_then(|bytes| std::fs::write(&pickle_to, bytes));
                    match written {
                        Ok(()) => (self.proof_step_reply(state), Fault::None),
                        Err(error) => (
                            Reply::Error {
                                message: format!("cannot write {pickle_to}: {error}"),
                            },
                            Fault::None,
                        ),
                    }
                }
            },
            Request::UnpickleProofState {
                unpickle_proof_state_from,
            } => {
                let loaded = std::fs::read(&unpickle_proof_state_from)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| {
                        serde_json::from_slice::<ProofState>(&bytes).map_err(|e| e.to_string())
                    });
                match loaded {
                    Ok(state) => (self.proof_step_reply(state), Fault::None),
                    Err(error) => (
                        Reply::Error {
                            message: format!("cannot read {unpickle_proof_state_from}: {error}"),
                        },
                        Fault::None,
                    ),
                }
            }
        }
    }

    /// A new proof state holding `state`, answered as the REPL answers a
    /// pickle or an unpickle.
    fn proof_step_reply(&mut self, state: ProofState) -> Reply {
        let goals = state.rendered_goals();
        let status = state.status();
        let proof_state = self.new_proof_state(state);
        Reply::ProofStep(ProofStepReply {
            proof_state,
            goals,
            proof_status: Some(status.into()),
            messages: Vec::new(),
            sorries: Vec::new(),
            traces: None,
            extra: Map::new(),
        })
    }

    /// Run a tactic on a proof state: its `-- sim:` directives act in
    /// order, then the tactic model (or the directives `closes`/`goal`)
    /// shapes the goals.
    fn tactic(&mut self, text: &str, state: ProofState) -> (Reply, Fault) {
        let mut fault = Fault::None;
        let mut messages = Vec::new();
        let mut shaped: Option<Vec<String>> = None;
        let mut recovered = false;
        let mut tactic_lines = Vec::new();
        for line in text.lines() {
            let Some(directive) = line.trim().strip_prefix("-- sim:") else {
                tactic_lines.push(line);
                continue;
            };
            let directive = directive.trim();
            let name = directive.split_whitespace().next().unwrap_or("");
            let args: Vec<&str> = directive.split_whitespace().skip(1).collect();
            let text_arg = directive[name.len()..].trim().to_string();
            match name {
                "closes" => {
                    shaped.get_or_insert_with(Vec::new);
                }
                "goal" => shaped.get_or_insert_with(Vec::new).push(text_arg),
                "fail" => {
                    return (
                        Reply::Error {
                            message: format!("Lean error:\n{text_arg}"),
                        },
                        fault,
                    )
                }
                "error" => {
                    recovered = true;
                    messages.push(tactic_message(Severity::Error, text_arg));
                }
                "warning" => messages.push(tactic_message(Severity::Warning, text_arg)),
                "info" => messages.push(tactic_message(Severity::Info, text_arg)),
                other => match common_directive(other, &args, &text_arg, &mut fault) {
                    Some(Some(report)) => messages.push(tactic_message(Severity::Info, report)),
                    Some(None) => {}
                    None => messages.push(tactic_message(
                        Severity::Error,
                        format!("lean-sim: unknown directive `{other}`"),
                    )),
                },
            }
        }
        let mut next = state.clone();
        let mut sorries = Vec::new();
        let main = state.goals.first().cloned();
        if recovered {
            // Lean recovers from an elaboration error by closing the goal with `sorry`.
            if !next.goals.is_empty() {
                next.goals.remove(0);
            }
            next.sorry = true;
        } else if let Some(targets) = shaped {
            let Some(main) = main else {
                return (
                    Reply::Error {
                        message: "Lean error:\nno goals to be proved".into(),
                    },
                    fault,
                );
            };
            let replacement: Vec<tactics::Goal> = targets
                .iter()
                .map(|target| tactics::Goal {
                    target: target.clone(),
                    ..main.clone()
                })
                .collect();
            next.goals.splice(0..1, replacement);
        } else {
            let constants = &state.constants;
            let known = |name: &str| {
                constants
                    .iter()
                    .any(|constant| constant == name || constant.ends_with(&format!(".{name}")))
            };
            match tactics::run(&tactic_lines.join("\n"), &state.goals, &known) {
                Err(tactics::Thrown(error)) => {
                    return (
                        Reply::Error {
                            message: format!("Lean error:\n{error}"),
                        },
                        fault,
                    )
                }
                Ok(step) => {
                    for goal in step.sorries {
                        let opened = ProofState {
                            goals: vec![goal],
                            sorry: false,
                            ..state.clone()
                        };
                        let goal = opened.rendered_goals().remove(0);
                        let proof_state = self.new_proof_state(opened);
                        sorries.push(Sorry {
                            pos: None,
                            end_pos: None,
                            goal,
                            proof_state: Some(proof_state),
                            extra: Map::new(),
                        });
                        next.sorry = true;
                    }
                    for error in step.errors {
                        messages.push(tactic_message(Severity::Error, error));
                        next.sorry = true;
                    }
                    next.goals = step.goals;
                }
            }
        }
        let goals = next.rendered_goals();
        let status = next.status();
        let proof_state = self.new_proof_state(next);
        let reply = ProofStepReply {
            proof_state,
            goals,
            proof_status: Some(status.into()),
            messages,
            sorries,
            traces: None,
            extra: Map::new(),
        };
        (Reply::ProofStep(reply), fault)
    }

    fn command(&mut self, text: &str, env: Option<u64>) -> (Reply, Fault) {
        let mut environment = match env {
            None => Environment::default(),
            Some(id) => match self.environments.get(id as usize) {
                Some(environment) => environment.clone(),
                None => {
                    return (
                        Reply::Error {
                            message: "Unknown environment.".into(),
                        },
                        Fault::None,
                    )
                }
            },
        };
        let (messages, sorries, fault) = self.elaborate(text, env.is_some(), &mut environment);
        let env = self.new_environment(environment);
        (
            Reply::Command(CommandReply {
                env,
                messages,
                sorries,
                ..Default::default()
            }),
            fault,
        )
    }

    /// Elaborate a command's text into `environment`; returns messages, sorries and any fault.
    fn elaborate(
        &mut self,
        text: &str,
        has_env: bool,
        environment: &mut Environment,
    ) -> (Vec<Message>, Vec<Sorry>, Fault) {
        let items = analysis::analyse(text);
        let mut messages = Vec::new();
        let mut sorries = Vec::new();
        let mut fault = Fault::None;
        let mut extra_axioms: Vec<(String, Vec<String>)> = Vec::new();
        let mut scope = Scope::default();
        for item in &items {
            if let Item::Directive { directive, .. } = item {
                if let Some(rest) = directive.strip_prefix("axioms ") {
                    let mut parts = rest.split_whitespace();
                    if let (Some(name), Some(list)) = (parts.next(), parts.next()) {
                        extra_axioms.push((
                            name.to_string(),
                            list.split(',').map(str::to_string).collect(),
                        ));
                    }
                }
            }
        }
        for item in items {
            match item {
                Item::Import { module, pos } => {
                    if has_env {
                        let end = (pos.0, 6);
                        messages.push(message(Severity::Error, pos, end, "invalid 'import' command, it must be used in the beginning of the file"));
                        continue;
                    }
                    if module == "SimMissing" || module.starts_with("SimMissing.") {
                        let end = (pos.0, pos.1 + 7 + module.len() as u32);
                        messages.push(message(Severity::Error, pos, end, format!("unknown module prefix 'SimMissing'\n\nNo directory 'SimMissing' or file 'SimMissing.olean' in the search path entries:\n{}", "/lean/lib/lean")));
                        continue;
                    }
                    if module == "Mathlib" || module.starts_with("Mathlib.") {
                        environment.mathlib = true;
                    }
                    if let Some(milliseconds) = module
                        .strip_prefix("SimCost.ms")
                        .and_then(|n| n.parse().ok())
                    {
                        std::thread::sleep(Duration::from_millis(milliseconds));
                    }
                    if let Some(mebibytes) = module
                        .strip_prefix("SimMem.mib")
                        .and_then(|n| n.parse().ok())
                    {
                        acts::hold_memory(mebibytes);
                    }
                }
                Item::AuditDefinition { command } => {
                    if !environment.audits.contains(&command) {
                        environment.audits.push(command);
                    }
                }
                Item::SpoofPrintAxioms => environment.print_axioms_spoofed = true,
                Item::Declaration(declaration) => {
                    self.declare(
                        declaration,
                        environment,
                        &scope,
                        &extra_axioms,
                        &mut messages,
                        &mut sorries,
                    );
                }
                Item::Open(namespaces) => scope.opens.extend(namespaces),
                Item::Namespace(name) => {
                    scope.opens.push(scope.prefixed(&name));
                    scope.blocks.push(Some(name));
                }
                Item::Section => scope.blocks.push(None),
                Item::End => {
                    if let Some(Some(_)) = scope.blocks.pop() {
                        scope.opens.pop();
                    }
                }
                Item::PrintAxioms { name, pos, end } => {
                    let data = match environment.find(&name) {
                        _ if environment.print_axioms_spoofed => {
                            format!("'{name}' does not depend on any axioms")
                        }
                        None => {
                            messages.push(message(
                                Severity::Error,
                                pos,
                                end,
                                format!("unknown constant '{name}'"),
                            ));
                            continue;
                        }
                        Some(constant) if constant.axioms.is_empty() => {
                            format!("'{name}' does not depend on any axioms")
                        }
                        Some(constant) => {
                            format!(
                                "'{name}' depends on axioms: [{}]",
                                constant
                                    .axioms
                                    .iter()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    };
                    messages.push(message(Severity::Info, pos, end, data));
                }
                Item::Audit { command, pos, end } => {
                    if environment.audits.contains(&command) {
                        let nonce = command.trim_start_matches("#leanfarm_audit_");
                        let entries: Vec<serde_json::Value> = environment.constants
                            .iter()
                            .map(|c| serde_json::json!({"name": c.name, "kind": c.constant_kind(), "axioms": c.axioms, "type": c.signature, "term": c.term}))
                            .collect();
                        let data = format!(
                            "leanfarm-audit {nonce} {}",
                            serde_json::Value::Array(entries)
                        );
                        messages.push(message(Severity::Info, pos, end, data));
                    } else {
                        messages.push(message(
                            Severity::Error,
                            pos,
                            end,
                            "unexpected token '#'; expected command",
                        ));
                    }
                }
                Item::Directive { directive, line } => {
                    let start = (line, 0);
                    let end = (line, directive.chars().count() as u32 + 8);
                    let mut words = directive.split_whitespace();
                    let name = words.next().unwrap_or("");
                    let args: Vec<&str> = words.collect();
                    let text_arg = directive[name.len()..].trim().to_string();
                    match name {
                        "error" => messages.push(message(Severity::Error, start, end, text_arg)),
                        "warning" => {
                            messages.push(message(Severity::Warning, start, end, text_arg))
                        }
                        "info" => messages.push(message(Severity::Info, start, end, text_arg)),
                        "axioms" => {}
                        "unchecked" => {
                            let name = args.first().copied().unwrap_or("unchecked").to_string();
                            let signature = text_arg[name.len().min(text_arg.len())..]
                                .trim()
                                .to_string();
                            let term = terms::term_key(&signature, &[], &[]);
                            environment.constants.push(Constant {
                                name,
                                kind: "theorem".into(),
                                axioms: BTreeSet::new(),
                                signature,
                                term,
                                kernel_checked: false,
                            });
                        }
                        other => match common_directive(other, &args, &text_arg, &mut fault) {
                            Some(Some(report)) => {
                                messages.push(message(Severity::Info, start, end, report))
                            }
                            Some(None) => {}
                            None => messages.push(message(
                                Severity::Error,
                                start,
                                end,
                                format!("lean-sim: unknown directive `{other}`"),
                            )),
                        },
                    }
                }
            }
        }
        (messages, sorries, fault)
    }

    fn declare(
        &mut self,
        mut declaration: Declaration,
        environment: &mut Environment,
        scope: &Scope,
        extra_axioms: &[(String, Vec<String>)],
        messages: &mut Vec<Message>,
        sorries: &mut Vec<Sorry>,
    ) {
        let written_name = declaration.name.clone().unwrap_or_default();
        declaration.name = declaration.name.map(|name| scope.prefixed(&name));
        if let Some(name) = &declaration.name {
            if environment.find(name).is_some() {
                let data = format!("'{name}' has already been declared");
                messages.push(message(
                    Severity::Error,
                    declaration.name_pos,
                    declaration.name_end,
                    data,
                ));
                return;
            }
        }
        let mut axioms = BTreeSet::new();
        let opened = ProofState {
            goals: vec![tactics::goal_of_signature(&declaration.signature)],
            sorry: false,
            mathlib: environment.mathlib,
            constants: environment
                .constants
                .iter()
                .map(|constant| constant.name.clone())
                .collect(),
        };
        let goal = opened.rendered_goals().remove(0);
        for (start, end) in &declaration.sorries {
            let proof_state = self.new_proof_state(opened.clone());
            sorries.push(Sorry {
                pos: Some(pos(*start)),
                end_pos: Some(pos(*end)),
                goal: goal.clone(),
                proof_state: Some(proof_state),
                extra: Map::new(),
            });
            axioms.insert("sorryAx".to_string());
        }
        if !declaration.sorries.is_empty() {
            messages.push(message(
                Severity::Warning,
                declaration.name_pos,
                declaration.name_end,
                "declaration uses `sorry`",
            ));
        }
        if tokens(&declaration.code).any(|token| token == "native_decide") {
            axioms.insert("Lean.ofReduceBool".to_string());
        }
        let own_name = declaration.name.clone().unwrap_or_default();
        for token in tokens(&declaration.code) {
            if token == own_name {
                continue;
            }
            // `cheat.elim` uses `cheat`: try the token and each dotted prefix.
            let prefixes = token
                .match_indices('.')
                .map(|(index, _)| &token[..index])
                .chain(std::iter::once(token));
            for candidate in prefixes {
                if let Some(constant) = environment.find(candidate) {
                    axioms.extend(constant.axioms.iter().cloned());
                }
            }
        }
        for (name, extra) in extra_axioms {
            if *name == own_name || *name == written_name {
                axioms.extend(extra.iter().cloned());
            }
        }
        if declaration.kind == "axiom" {
            axioms.insert(own_name.clone());
        }
        let visible: Vec<terms::Visible<'_>> = environment
            .constants
            .iter()
            .map(|constant| terms::Visible {
                name: &constant.name,
                kind: &constant.kind,
                signature: &constant.signature,
            })
            .collect();
        let term = terms::term_key(&declaration.signature, &visible, &scope.opens);
        let name = match (declaration.name, declaration.kind.as_str()) {
            (Some(name), _) if declaration.private => format!("_private.Sim.0.{name}"),
            (Some(name), _) => name,
            // An anonymous instance is named after its class and arguments.
            (None, "instance") => terms::instance_name(&declaration.signature),
            (None, _) => return,
        };
        environment.constants.push(Constant {
            name,
            kind: declaration.kind,
            axioms,
            signature: declaration.signature,
            term,
            kernel_checked: true,
        });
    }
}

/// A directive that acts the same in a command and in a tactic: effort,
/// memory, faults and hostile acts. `None` when `name` is not one; else
/// the report to give as an info message, if any.
fn common_directive(
    name: &str,
    args: &[&str],
    text_arg: &str,
    fault: &mut Fault,
) -> Option<Option<String>> {
    let number = || {
        args.first()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    match name {
        "cpu" => acts::burn_cpu(number()),
        "sleep" => std::thread::sleep(Duration::from_millis(number())),
        "memory" => acts::hold_memory(number() as usize),
        "stderr" => eprintln!("{text_arg}"),
        "garbage" => *fault = Fault::Garbage,
        "exit-mid-reply" => *fault = Fault::ExitMidReply,
        "silent" => *fault = Fault::Silent,
        "crash" => *fault = Fault::Crash,
        "exit" => *fault = Fault::Exit(number() as i32),
        "output-flood" => *fault = Fault::Flood(number() as usize),
        "spin" => acts::spin_forever(),
        "alloc-unbounded" => acts::allocate_without_bound(),
        "fork-bomb" => acts::fork_bomb(),
        other => return acts::hostile_act(other, args).map(Some),
    }
    Some(None)
}

/// Lean's style of printing a reply: one object over several lines, framed.
fn print_reply(reply: &Reply) -> String {
    let value = reply.to_value();
    let serde_json::Value::Object(object) = value else {
        unreachable!("replies are objects")
    };
    let fields: Vec<String> = object
        .iter()
        .map(|(key, value)| format!("{}: {}", serde_json::Value::String(key.clone()), value))
        .collect();
    lean_protocol::encode_frame(&format!("{{{}}}", fields.join(",\n ")))
}

fn run_repl(recordings: Option<replay::Recordings>) -> i32 {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut session = Session::default();
    let mut history: Vec<serde_json::Value> = Vec::new();
    let mut recordings = recordings;
    // Like the REPL, lean-sim reads requests of any size.
    let mut frames = FrameReader::new(usize::MAX);
    while let Some(frame) = next_request(&mut input, &mut frames) {
        let output = match frame {
            Err(error) => print_reply(&Reply::Error {
                message: format!("lean-sim: {error}"),
            }),
            Ok(text) => match recordings.as_mut() {
                Some(recordings) => replay_answer(recordings, &mut history, &text),
                None => match lean_protocol::parse_request(&text) {
                    Ok(request) => {
                        let (reply, fault) = session.answer(request);
                        match deliver(&reply, fault) {
                            Some(output) => output,
                            None => continue,
                        }
                    }
                    Err(error) => print_reply(&Reply::Error {
                        message: format!("Could not parse JSON:\n{error}"),
                    }),
                },
            },
        };
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(output.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            return 0;
        }
    }
    0
}

/// The next request frame, or `None` once the input has ended (or cannot be
/// read). As in the REPL, the end of input also ends a last request that
/// has no blank line after it.
fn next_request(
    input: &mut impl BufRead,
    frames: &mut FrameReader,
) -> Option<Result<String, FrameError>> {
    loop {
        let available = input.fill_buf().unwrap_or(&[]);
        if available.is_empty() {
            return match frames.finish() {
                Ok(frame) => frame.map(Ok),
                Err(FrameError::EndedMidFrame { unterminated }) => Some(Ok(unterminated)),
                Err(error) => Some(Err(error)),
            };
        }
        let (consumed, outcome) = frames.push_bytes(available);
        input.consume(consumed);
        if outcome.is_some() {
            return outcome;
        }
    }
}

fn replay_answer(
    recordings: &mut replay::Recordings,
    history: &mut Vec<serde_json::Value>,
    text: &str,
) -> String {
    let request = match lean_protocol::parse_request(text)
        .map(|r| serde_json::to_value(r).expect("requests serialise"))
    {
        Ok(value) => value,
        Err(error) => {
            return print_reply(&Reply::Error {
                message: format!("Could not parse JSON:\n{error}"),
            })
        }
    };
    history.push(request);
    match recordings.reply_for(history) {
        Some(recorded) => lean_protocol::encode_frame(recorded),
        None => print_reply(&Reply::Error {
            message: "lean-sim replay: no recording for this command".into(),
        }),
    }
}

/// Print the reply, or act out a fault. `None` when nothing is to be printed.
fn deliver(reply: &Reply, fault: Fault) -> Option<String> {
    let text = print_reply(reply);
    match fault {
        Fault::None => Some(text),
        Fault::Garbage => Some(lean_protocol::encode_frame(
            "this is not json <<< garbage >>>",
        )),
        Fault::ExitMidReply => {
            let half = &text.as_bytes()[..text.len() / 2];
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(half).and_then(|_| stdout.flush());
            std::process::exit(1);
        }
        Fault::Silent => acts::sleep_forever(),
        Fault::Crash => std::process::abort(),
        Fault::Exit(code) => std::process::exit(code),
        Fault::Flood(mebibytes) => {
            let flood = "x".repeat(mebibytes << 20);
            let reply = Reply::Command(CommandReply {
                env: match reply {
                    Reply::Command(command) => command.env,
                    _ => 0,
                },
                messages: vec![message(Severity::Info, (1, 0), (1, 1), flood)],
                ..Default::default()
            });
            Some(print_reply(&reply))
        }
    }
}

fn run_json(file: &str) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("file not found: {file} ({error})");
            return 1;
        }
    };
    let mut session = Session::default();
    let mut environment = Environment::default();
    let (messages, _sorries, _fault) = session.elaborate(&text, false, &mut environment);
    let mut has_error = false;
    let mut stdout = std::io::stdout().lock();
    for message in messages {
        has_error |= message.severity == Severity::Error;
        let severity = match message.severity {
            Severity::Info | Severity::Trace => "information",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        let line = lean_protocol::LeanJsonMessage {
            file_name: file.to_string(),
            pos: message.pos,
            end_pos: message.end_pos,
            severity: severity.to_string(),
            caption: String::new(),
            data: message.data,
            kind: None,
        };
        let _ = writeln!(
            stdout,
            "{}",
            serde_json::to_string(&line).expect("messages serialise")
        );
    }
    i32::from(has_error)
}
