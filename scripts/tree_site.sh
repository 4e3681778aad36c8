# Sourced by the GPU scripts (bash): this tree's packages importable without installing them (no build backend
# needed there). Their sources go on PYTHONPATH with a dist-info beside them holding their entry points
# (qa_common finds architectures through entry points). Needs ROOT (the tree's root) set.
SITE=/tmp/squad-qa-site
rm -rf "$SITE" && mkdir -p "$SITE/squad_qa_tree-0.0.dist-info"
printf 'Metadata-Version: 2.1\nName: squad-qa-tree\nVersion: 0.0\n' > "$SITE/squad_qa_tree-0.0.dist-info/METADATA"
{
  echo "[squad_qa.adapters]"
  for package in bert_qa lstm_qa t5_qa mamba_qa; do
    grep -A1 '^\[project.entry-points."squad_qa.adapters"\]' "$ROOT/packages/$package/pyproject.toml" | tail -1 | tr -d '"'
  done
} > "$SITE/squad_qa_tree-0.0.dist-info/entry_points.txt"
export PYTHONPATH="$ROOT/packages/common/src:$ROOT/packages/bert_qa/src:$ROOT/packages/lstm_qa/src:$ROOT/packages/t5_qa/src:$ROOT/packages/mamba_qa/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
