"""BiLSTM + attention extractive readers for squad-qa: the seed study's four models and BiDAF."""
