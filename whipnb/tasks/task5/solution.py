import torch
import torch.nn as nn

from whipnb.tasks.task5.data import FEATURES, NUM_CLASSES, load_pretrained_backbone, make_data

torch.manual_seed(0)
X_train, y_train, X_val, y_val = make_data()


class TransferNet(nn.Module):
    """The backbone pretrained on 8 operating modes, with a new head for the 4 fault types."""

    def __init__(self):
        super().__init__()
        self.backbone = load_pretrained_backbone()
        self.head = nn.Linear(FEATURES, NUM_CLASSES)

    def forward(self, x):
        return self.head(self.backbone(x))


model = TransferNet()

# Keep the pretrained features: freeze the backbone and train only the new head.
for param in model.backbone.parameters():
    param.requires_grad = False

optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.001)
criterion = nn.CrossEntropyLoss()

requiring_grad = sum(p.numel() for p in model.parameters() if p.requires_grad)
in_optimizer = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
print(f"Parameters that require grad: {requiring_grad:,} | held by the optimizer: {in_optimizer:,}")

losses = []
for epoch in range(40):
    order = torch.randperm(len(X_train))
    epoch_loss = 0.0
    for start in range(0, len(X_train), 16):
        batch = order[start:start + 16]
        optimizer.zero_grad()
        loss = criterion(model(X_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch)
    losses.append(epoch_loss / len(X_train))

model.eval()
with torch.no_grad():
    val_acc = (model(X_val).argmax(dim=1) == y_val).float().mean().item()

print(f"LOSSES:{[round(value, 4) for value in losses]}")
print(f"VAL_ACC:{val_acc:.4f}")
